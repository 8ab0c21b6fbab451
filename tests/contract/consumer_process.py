"""A consumer run as a real subprocess by the crash tests: leases one message, reports it, then hangs.

Usage: ``python -m tests.contract.consumer_process '<settings json>' QUEUE LEASE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from asya_common.transport import TransportSettings, create_transport


async def main(settings_json: str, queue: str, lease: float) -> None:
    settings = TransportSettings(**json.loads(settings_json))
    async with create_transport(settings) as transport:
        while True:
            got = await transport.receive(queue, max_messages=1, wait_seconds=1.0, lease_seconds=lease)
            if got:
                print(f"LEASED {got[0].message_id}", flush=True)
                await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
