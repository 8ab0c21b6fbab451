"""Issue 10, item 9 (product side): a publish into a RabbitMQ queue that exists but is not bound yet.

The controller (and ``ensure_queue``) declares a queue and then binds it to the exchange; a sidecar that
publishes in between got NO_ROUTE, reported as ``QueueNotFound``: a failed attempt with backoff (and
error-end once attempts ran out) for a queue that was about to work. Now the publish waits a few
seconds for the binding; a queue that really does not exist is still ``QueueNotFound`` at once.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from asya_common.transport import QueueNotFound, create_transport


async def test_a_publish_waits_for_the_binding_of_a_just_declared_queue(rabbitmq_settings):
    name = f"asya-unbound-{uuid.uuid4().hex[:8]}"
    async with create_transport(rabbitmq_settings) as transport:
        connection = await aio_pika.connect(rabbitmq_settings.rabbitmq_url.split("?")[0])
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            sending = asyncio.create_task(transport.send(name, b'{"n": 1}'))
            await asyncio.sleep(0.5)  # the publish is waiting (before: QueueNotFound at once)
            assert not sending.done() or sending.exception() is None, sending.exception()
            await queue.bind(rabbitmq_settings.rabbitmq_exchange, routing_key=name)
            await asyncio.wait_for(sending, 10)
            received = await transport.receive(name, max_messages=1, wait_seconds=5)
            assert [m.body for m in received] == [b'{"n": 1}']
            await transport.ack(received[0])
        finally:
            await transport.delete_queue(name)
            await connection.close()


async def test_a_queue_that_does_not_exist_is_still_queue_not_found(rabbitmq_settings):
    async with create_transport(rabbitmq_settings) as transport:
        with pytest.raises(QueueNotFound):
            await asyncio.wait_for(transport.send(f"asya-missing-{uuid.uuid4().hex[:8]}", b"{}"), 10)
