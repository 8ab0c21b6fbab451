"""A sender run as a real subprocess by the SQLite crash test: sends numbered bodies, reports each, never stops.

Usage: ``python -m tests.contract.sender_process '<settings json>' QUEUE``. It prints ``SENT <i>`` only after
``send`` returned for body ``<i>``, so every number printed must survive a kill -9 of this process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys

from asya_common.transport import TransportSettings, create_transport


async def main(settings_json: str, queue: str) -> None:
    settings = TransportSettings(**json.loads(settings_json))
    async with create_transport(settings) as transport:
        for i in itertools.count():
            await transport.send(queue, str(i).encode())
            print(f"SENT {i}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
