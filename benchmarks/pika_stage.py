"""A bare aio-pika relay stage: the cheapest correct stage a user could write by hand.

``python -m benchmarks.pika_stage URL EXCHANGE FROM TO PREFETCH`` consumes ``FROM`` with ``basic.qos``
prefetch PREFETCH, publishes every body persistent and mandatory to ``TO`` through ``EXCHANGE`` (the
same direct exchange and quorum queues our transport uses), waits for the publisher confirm and only
then acks: the same broker work and the same guarantee as one sidecar hop, with no envelope handling.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aio_pika


async def relay(url: str, exchange_name: str, source: str, target: str, prefetch: int) -> None:
    """Relays until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connection = await aio_pika.connect(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        exchange = await publisher.get_exchange(exchange_name)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=prefetch)
        queue = await consumer.get_queue(source)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await exchange.publish(aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                   routing_key=target, mandatory=True)
            await message.ack()

        await queue.consume(on_message)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(relay(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
