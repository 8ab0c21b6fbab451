"""A forwarding consumer run as a real subprocess by the SQLite crash test; it never stops.

Usage: ``python -m tests.contract.forwarder_process '<settings json>' QUEUE OUT LEASE_SECONDS``. It leases up to
8 messages of QUEUE at a time and forwards each body unchanged to OUT (``Transport.forward``: the output and the
ack in one commit), printing ``FORWARDED <body>`` after each call returned.
"""

from __future__ import annotations

import asyncio
import json
import sys

from asya_common.transport import TransportSettings, create_transport


async def main(settings_json: str, queue: str, out: str, lease: float) -> None:
    settings = TransportSettings(**json.loads(settings_json))
    async with create_transport(settings) as transport:
        async def forward(message) -> None:
            await transport.forward(message, out, [message.body])
            print(f"FORWARDED {message.body.decode()}", flush=True)

        while True:
            got = await transport.receive(queue, max_messages=8, wait_seconds=1.0, lease_seconds=lease)
            await asyncio.gather(*(forward(m) for m in got))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
