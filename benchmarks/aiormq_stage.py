"""The floor under any Python stage: aiormq (aio-pika's own protocol layer) with no wrapper objects.

``python -m benchmarks.aiormq_stage URL EXCHANGE FROM TO PREFETCH`` does what ``benchmarks.pika_stage``
does (prefetch N, persistent + mandatory publish through the exchange, wait for the confirm, then ack)
straight on aiormq channels, on uvloop when installed. It shows how much of a stage's CPU is the
broker client itself, which no amount of work in the sidecar can remove.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aiormq
from pamqp.commands import Basic

PERSISTENT = Basic.Properties(delivery_mode=2)


async def relay(url: str, exchange: str, source: str, target: str, prefetch: int) -> None:
    """Relays until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aiormq.connect(url)
    publisher = await connection.channel(publisher_confirms=True)
    consumer = await connection.channel()
    await consumer.basic_qos(prefetch_count=prefetch)

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        await publisher.basic_publish(message.body, exchange=exchange, routing_key=target, properties=PERSISTENT,
                                      mandatory=True)
        await consumer.basic_ack(message.delivery_tag)

    await consumer.basic_consume(source, on_message)
    await stop.wait()
    await connection.close()


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
