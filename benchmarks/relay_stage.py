"""A bare relay stage (receive -> send -> ack, no runtime): the baseline the sidecar is compared with.

Run as ``python -m benchmarks.relay_stage FROM TO CONCURRENCY`` with the transport from ASYA_* env.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from asya_common.settings import load_settings
from asya_common.transport import TransportSettings, create_transport


async def relay(source: str, target: str, concurrency: int) -> None:
    """Moves messages from ``source`` to ``target`` with ``concurrency`` workers until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with create_transport(load_settings(TransportSettings)) as transport:

        async def worker() -> None:
            while not stop.is_set():
                for message in await transport.receive(source, max_messages=1, wait_seconds=0.5, lease_seconds=30):
                    await transport.send(target, message.body)
                    await transport.ack(message)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(relay(sys.argv[1], sys.argv[2], int(sys.argv[3])))
