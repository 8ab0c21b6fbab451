"""Contract of ``Transport.forward``: publish a message's outputs, then ack it, as the sidecar does per hop.

Every transport publishes the outputs and removes the input. When the input's lease was lost to another
consumer, the transports differ, and the tests pin how: SQLite writes the outputs and the delete in one
commit, so it raises ``LeaseLost`` and publishes nothing (the new owner makes the outputs); RabbitMQ, SQS
and Pub/Sub publish first and then ack, so the outputs exist, ``AckFailed`` (caused by ``LeaseLost``) is
raised and the redelivered input publishes them again (at-least-once).
"""

from __future__ import annotations

import time

import pytest

from asya_common.transport import AckFailed, LeaseLost, MessageTooLarge, QueueNotFound, QueueSpec
from tests.contract.conftest import LEASE, unique_name
from tests.contract.helpers import drain, receive_one

pytestmark = [pytest.mark.broker]


@pytest.fixture
async def out_queue(transport):
    """A second queue, where the outputs go."""
    name = unique_name("asya-out")
    await transport.ensure_queue(QueueSpec(name=name, dlq_name=f"{name}-dlq", lease_seconds=LEASE))
    yield name
    await transport.delete_queue(name)
    await transport.delete_queue(f"{name}-dlq")


async def test_forward_publishes_the_outputs_and_removes_the_input(transport, queue, out_queue):
    await transport.send(queue, b"input")
    message = await receive_one(transport, queue, within=5, lease=LEASE)
    assert message is not None
    await transport.forward(message, out_queue, [b"out-1", b"out-2"])
    outputs = await drain(transport, out_queue, 2, within=10)
    assert sorted(m.body for m in outputs) == [b"out-1", b"out-2"]
    assert await receive_one(transport, queue, within=LEASE + 2) is None, "the input came back after forward"


async def test_forward_to_its_own_queue_with_a_delay_is_a_retry(transport, queue):
    delay = 2.0
    await transport.send(queue, b"attempt 1")
    message = await receive_one(transport, queue, within=5)
    await transport.forward(message, queue, [b"attempt 2"], delay_seconds=delay)
    forwarded_at = time.monotonic()
    again = await receive_one(transport, queue, within=delay + 10)
    assert again is not None and again.body == b"attempt 2"
    assert time.monotonic() - forwarded_at >= delay * 0.9, "visible before its delay"
    await transport.ack(again)
    assert await receive_one(transport, queue, within=1.5) is None, "the first attempt was not acked"


async def test_forward_refusals_leave_the_input_leased_and_nothing_published(transport, queue, out_queue):
    await transport.send(queue, b"input")
    message = await receive_one(transport, queue, within=5)
    with pytest.raises(QueueNotFound):
        await transport.forward(message, unique_name("asya-missing"), [b"lost?"])
    with pytest.raises(MessageTooLarge):
        await transport.forward(message, out_queue, [b"small", b"x" * (transport.max_message_bytes + 1)])
    assert await receive_one(transport, out_queue, within=1) is None, "a refused forward published something"
    await transport.ack(message)  # still ours: neither refusal acked it


async def test_forward_after_the_lease_was_lost(transport, queue, out_queue, kind):
    await transport.send(queue, b"input")
    first = await receive_one(transport, queue, within=5, lease=LEASE)
    assert first is not None
    again = await receive_one(transport, queue, within=LEASE + 8, lease=30)
    assert again is not None and again.receive_count == 2, "the input must come back after its lease"
    if kind == "sqlite":  # one commit: nothing published, the new owner makes the outputs
        with pytest.raises(LeaseLost):
            await transport.forward(first, out_queue, [b"out"])
        assert await receive_one(transport, out_queue, within=1.5) is None, "a lost lease published its outputs"
    else:  # publish, then ack: the outputs exist and the redelivery will publish them again
        with pytest.raises(AckFailed) as raised:
            await transport.forward(first, out_queue, [b"out"])
        assert isinstance(raised.value.error, LeaseLost) and raised.value.__cause__ is raised.value.error
        assert [m.body for m in await drain(transport, out_queue, 1, within=10)] == [b"out"]
    await transport.forward(again, out_queue, [b"out"])  # the new owner still holds the input
    assert [m.body for m in await drain(transport, out_queue, 1, within=10)] == [b"out"]
    assert await receive_one(transport, queue, within=1.5) is None
