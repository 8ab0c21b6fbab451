"""RabbitMQ: acks of one loop turn leave as one ``basic.ack(multiple=True)`` on a real broker, and settle only
the messages that were acked (``_rabbitmq_acks``; the same guarantees without a server in test_rabbitmq_internals)."""

from __future__ import annotations

import asyncio
import time

import pytest

from asya_common.transport import QueueSpec, create_transport
from tests.contract.conftest import LEASE, unique_name
from tests.contract.helpers import receive_one

pytestmark = [pytest.mark.broker]


@pytest.fixture
async def rabbitmq(rabbitmq_settings):
    async with create_transport(rabbitmq_settings) as transport:
        queue = unique_name()
        await transport.ensure_queue(QueueSpec(name=queue, dlq_name=f"{queue}-dlq", max_receive_count=3))
        yield transport, queue
        await transport.delete_queue(queue)
        await transport.delete_queue(f"{queue}-dlq")


async def _hold(transport, queue, count):
    await transport.send_many(queue, [f"m{i}".encode() for i in range(count)])
    held = []
    deadline = time.monotonic() + 20
    while len(held) < count and time.monotonic() < deadline:
        held += await transport.receive(queue, max_messages=count - len(held), wait_seconds=1.0, lease_seconds=60)
    assert len(held) == count
    return held


def _record_acks(transport, queue):
    channel = transport._consumers[queue].channel
    frames, basic_ack = [], channel.basic_ack

    async def recording(delivery_tag, multiple=False, **kwargs):
        frames.append((delivery_tag, multiple))
        return await basic_ack(delivery_tag, multiple=multiple, **kwargs)

    channel.basic_ack = recording
    return frames


async def test_acks_of_one_turn_are_one_multiple_ack_and_the_broker_takes_it(rabbitmq):
    transport, queue = rabbitmq
    held = await _hold(transport, queue, 8)
    frames = _record_acks(transport, queue)
    await asyncio.gather(*(transport.ack(m) for m in held))
    assert frames == [(held[-1].handle.incoming.delivery_tag, True)]
    assert await receive_one(transport, queue, within=2) is None
    held = await _hold(transport, queue, 3)  # the channel is still open: the broker accepted the frame
    await asyncio.gather(*(transport.ack(m) for m in held))


async def test_a_held_message_is_not_covered_and_the_others_are_acked_at_once(rabbitmq):
    transport, queue = rabbitmq
    held = await _hold(transport, queue, 6)
    frames = _record_acks(transport, queue)
    tags = [m.handle.incoming.delivery_tag for m in held]
    await asyncio.gather(*(transport.ack(m) for m in held[:2] + held[3:]))  # the third is still being processed
    assert (tags[1], True) in frames and not any(multiple and tag >= tags[2] for tag, multiple in frames)
    await transport.extend_lease(held[2], LEASE)  # it lapses and comes back (only it)
    again = await receive_one(transport, queue, within=LEASE + 8)
    assert again is not None and again.body == held[2].body
    await transport.ack(again)
    assert await receive_one(transport, queue, within=LEASE + 1) is None
