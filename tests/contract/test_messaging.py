"""Message path contract: round trip, leases, delays, dead-lettering, depth, size limits."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from asya_common.transport import LeaseLost, MessageTooLarge, QueueDepth, QueueNotFound, TransportError
from tests.contract.conftest import LEASE, MAX_RECEIVES, unique_name
from tests.contract.helpers import drain, eventually, receive_one

pytestmark = [pytest.mark.broker]


async def test_round_trip_delivers_each_body_once(transport, queue):
    bodies = [b'{"id": "1"}', b'{"id": "2"}', "{\"text\": \"h\u00e9llo \u2603\"}".encode()]
    for body in bodies:
        await transport.send(queue, body)
    received = await drain(transport, queue, len(bodies), within=10)
    assert sorted(m.body for m in received) == sorted(bodies)
    assert all(m.receive_count == 1 and m.queue == queue and m.message_id for m in received)
    assert await receive_one(transport, queue, within=1.5) is None


async def test_send_to_missing_queue_raises_queue_not_found(transport, queue):
    with pytest.raises(QueueNotFound):
        await transport.send(unique_name("asya-missing"), b"{}")
    with pytest.raises(QueueNotFound):
        await transport.send(unique_name("asya-missing"), b"{}", delay_seconds=1)
    await transport.send(queue, b"still works")
    message = await receive_one(transport, queue, within=5)
    assert message is not None and message.body == b"still works"
    await transport.ack(message)


async def test_receive_from_missing_queue_raises_queue_not_found(transport):
    with pytest.raises(QueueNotFound):
        await transport.receive(unique_name("asya-missing"), wait_seconds=0.5)


async def test_unacked_message_is_redelivered_after_its_lease(transport, queue):
    await transport.send(queue, b"lease-me")
    first = await receive_one(transport, queue, within=5, lease=LEASE)
    assert first is not None and first.receive_count == 1
    assert await receive_one(transport, queue, within=LEASE * 0.5, lease=LEASE) is None, "redelivered before lease end"
    again = await receive_one(transport, queue, within=LEASE + 8, lease=LEASE)
    assert again is not None, "an unacked message must come back after its lease"
    assert again.body == b"lease-me" and again.message_id == first.message_id
    assert again.receive_count == 2
    await transport.ack(again)
    with pytest.raises(LeaseLost):
        await transport.ack(first)


async def test_extended_lease_keeps_a_slow_message_invisible(transport, queue):
    await transport.send(queue, b"slow")
    message = await receive_one(transport, queue, within=5, lease=LEASE)
    assert message is not None
    started = time.monotonic()
    while time.monotonic() - started < LEASE * 3:
        await transport.extend_lease(message, LEASE)
        assert await receive_one(transport, queue, within=LEASE / 3, lease=LEASE) is None
    await transport.ack(message)
    assert await receive_one(transport, queue, within=LEASE + 2) is None


async def test_nack_with_delay_redelivers_after_not_before_the_delay(transport, queue):
    delay = 2.0
    await transport.send(queue, b"retry-me")
    message = await receive_one(transport, queue, within=5)
    await transport.nack(message, delay_seconds=delay)
    nacked_at = time.monotonic()
    again = await receive_one(transport, queue, within=delay + 10)
    assert again is not None and again.body == b"retry-me"
    assert time.monotonic() - nacked_at >= delay * 0.9, "redelivered before the delay"
    assert again.receive_count == 2
    await transport.ack(again)


async def test_nack_without_delay_redelivers_now(transport, queue):
    await transport.send(queue, b"again")
    message = await receive_one(transport, queue, within=5)
    await transport.nack(message)
    again = await receive_one(transport, queue, within=5)
    assert again is not None and again.body == b"again" and again.receive_count == 2
    await transport.ack(again)


async def test_delayed_send_is_invisible_until_due(transport, queue):
    delay = 2.0
    await transport.send(queue, b"later", delay_seconds=delay)
    sent_at = time.monotonic()
    message = await receive_one(transport, queue, within=delay + 10)
    assert message is not None and message.body == b"later"
    assert time.monotonic() - sent_at >= delay * 0.9, "a delayed message arrived early"
    await transport.ack(message)


@pytest.mark.parametrize("nack_delay", [0.0, 1.0], ids=["nack", "nack-delayed"])
async def test_message_goes_to_dlq_when_receive_count_would_exceed_the_limit(transport, queue, nack_delay):
    await transport.send(queue, b"poison")
    counts = []
    for _ in range(MAX_RECEIVES):
        message = await receive_one(transport, queue, within=10)
        assert message is not None, f"delivery {len(counts) + 1} of {MAX_RECEIVES} missing"
        counts.append(message.receive_count)
        await transport.nack(message, delay_seconds=nack_delay)
    assert counts == list(range(1, MAX_RECEIVES + 1))
    assert await receive_one(transport, queue, within=3) is None, "delivered past max_receive_count"
    dead = await receive_one(transport, f"{queue}-dlq", within=15)
    assert dead is not None and dead.body == b"poison"
    await transport.ack(dead)


async def test_depth_counts_ready_in_flight_and_delayed(transport, queue, traits):
    if not traits.depth:
        with pytest.raises(TransportError, match="not available"):
            await transport.depth(queue)
        return
    for body in (b"a", b"b", b"c"):
        await transport.send(queue, body)
    await transport.send(queue, b"d", delay_seconds=60)
    leased = await receive_one(transport, queue, within=5)
    assert leased is not None
    wanted = QueueDepth(ready=2, in_flight=1, delayed=1)

    async def matches():
        return await transport.depth(queue) == wanted

    assert await eventually(matches, within=traits.depth_lag_seconds + 5), await transport.depth(queue)
    await transport.ack(leased)


async def test_large_messages_round_trip_up_to_the_limit(transport, queue):
    limit = transport.max_message_bytes
    binary_limit = getattr(transport, "max_binary_bytes", limit)
    text = (b"0123456789abcdef" * (limit // 16 + 1))[:limit]
    binary = (bytes(range(256)) + os.urandom(binary_limit))[:binary_limit]
    for body in (text, binary):
        await transport.send(queue, body)
        message = await receive_one(transport, queue, within=30)
        assert message is not None and message.body == body, f"{len(body)}-byte body did not round-trip"
        await transport.ack(message)


async def test_message_over_the_limit_is_refused_clearly(transport, queue):
    limit = transport.max_message_bytes
    with pytest.raises(MessageTooLarge) as raised:
        await transport.send(queue, b"x" * (limit + 1))
    assert str(limit + 1) in str(raised.value) and str(limit) in str(raised.value)
    binary_limit = getattr(transport, "max_binary_bytes", limit)
    with pytest.raises(MessageTooLarge) as raised:
        await transport.send(queue, b"\xff" * (binary_limit + 1))
    assert str(binary_limit) in str(raised.value)
    assert await receive_one(transport, queue, within=1) is None


async def test_concurrent_receivers_of_one_transport_share_the_queue(transport, queue):
    bodies = [f"m{i}".encode() for i in range(20)]
    await transport.send_many(queue, bodies)
    results = await asyncio.gather(*(drain(transport, queue, len(bodies), within=4) for _ in range(4)))
    received = [m.body for batch in results for m in batch]
    assert sorted(received) == sorted(bodies), "concurrent receivers lost or duplicated messages"


async def test_a_receiver_that_raises_its_prefetch_gets_more_while_it_still_holds_one(transport, queue):
    """The sidecar raises its prefetch once it has timed the handler (docs/configuration.md); on RabbitMQ
    the broker must then push more to the live consumer, not only to consumers started later."""
    for i in range(6):
        await transport.send(queue, f"m{i}".encode())
    first = await receive_one(transport, queue, within=10)  # one at a time so far
    assert first is not None
    await transport.set_prefetch(queue, 5)
    more = []
    deadline = time.monotonic() + 10
    while len(more) < 4 and time.monotonic() < deadline:
        more += await transport.receive(queue, max_messages=4 - len(more), wait_seconds=1.0)
    assert len(more) == 4, "the raised prefetch did not reach the consumer"
    for message in [first, *more]:
        await transport.ack(message)


async def test_acks_sent_together_settle_only_their_own_messages(transport, queue):
    """A sidecar often finishes several held messages in the same moment: those acks settle exactly those
    messages. The oldest one, still being processed, is acked later; one returned in the same moment comes back
    at once; one whose lease lapses comes back after it; none of the acked ones ever comes back."""
    bodies = [f"m{i}".encode() for i in range(8)]
    await transport.send_many(queue, bodies)
    held = []
    deadline = time.monotonic() + 20
    while len(held) < len(bodies) and time.monotonic() < deadline:
        held += await transport.receive(queue, max_messages=len(bodies) - len(held), wait_seconds=1.0,
                                        lease_seconds=60)
    assert len(held) == len(bodies)
    oldest, returned, lapsing = held[0], held[2], held[5]
    together = [m for m in held if m not in (oldest, returned, lapsing)]
    await asyncio.gather(*(transport.ack(m) for m in together), transport.nack(returned))
    back = await receive_one(transport, queue, within=10)
    assert back is not None and back.body == returned.body, "the message returned with the acks did not come back"
    await transport.ack(back)
    await transport.extend_lease(lapsing, LEASE)
    await transport.ack(oldest)
    again = await receive_one(transport, queue, within=LEASE + 8)
    assert again is not None and again.body == lapsing.body, "a message held while others were acked was lost"
    await transport.ack(again)
    assert await receive_one(transport, queue, within=LEASE + 1) is None, "an acked message came back"


async def test_acks_that_returned_before_close_are_never_redelivered(transport, queue, settings):
    """A command-line tool (``asya dlq redrive``) acks what it took and exits at once: every ack that returned
    before ``close`` counts, even when the process closes right after it."""
    from asya_common.transport import create_transport

    bodies = [f"c{i}".encode() for i in range(20)]
    await transport.send_many(queue, bodies)
    taken = 0
    async with create_transport(settings) as taker:
        deadline = time.monotonic() + 20
        while taken < len(bodies) and time.monotonic() < deadline:
            for message in await taker.receive(queue, max_messages=10, wait_seconds=1.0, lease_seconds=LEASE):
                await taker.ack(message)
                taken += 1
    assert taken == len(bodies)
    assert await receive_one(transport, queue, within=LEASE + 2) is None, "an acked message came back after close"
