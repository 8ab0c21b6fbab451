"""RabbitMQ transport internals that need no server: delay rounding, reading queue arguments back, the channel guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("aiormq")

import aiormq.exceptions  # noqa: E402

from asya_common.transport import _rabbitmq_admin as admin  # noqa: E402
from asya_common.transport._rabbitmq_guard import guarded  # noqa: E402


@pytest.mark.parametrize("delay", [0.001, 0.05, 0.3, 1.0, 2.0, 7.3, 60.0, 899.5, 3600.0])
def test_delay_buckets_are_never_early_and_at_most_ten_percent_late(delay):
    bucket_s = admin.delay_bucket_ms(delay) / 1000
    assert bucket_s >= delay
    assert bucket_s <= max(delay * 1.1 + 0.001, 0.05)


def test_delay_buckets_are_few():
    buckets = {admin.delay_bucket_ms(ms / 1000) for ms in range(0, 600_000, 7)}
    assert len(buckets) < 120


@pytest.mark.parametrize(
    ("error", "arg", "value"),
    [
        ("PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': "
         "received '9' but current is '2'", "x-delivery-limit", 2),
        ("PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': "
         "received none but current is the value '' of type 'longstr'", "x-dead-letter-exchange", ""),
        ("PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': "
         "received the value '5' of type 'signedint' but current is the value '7' of type 'long'", "x-max-length", 7),
    ],
)
def test_inequivalent_arg_errors_are_parsed(error, arg, value):
    match = admin._INEQUIVALENT.search(error)
    assert match and match["arg"] == arg
    found = match["value"] if match["value"] is not None else match["bare"]
    assert (int(found) if isinstance(value, int) else found) == value


def test_spec_attributes_map_back_to_queue_spec_terms():
    args = admin.queue_arguments(5, "asya-x-dlq")
    assert args["x-delivery-limit"] == 4
    assert admin.spec_attributes(args) == {"dlq_name": "asya-x-dlq", "max_receive_count": 5, "queue_type": "quorum"}


class _Channel:
    """What ``guarded`` uses of an aiormq channel: ``is_closed`` and the ``closing`` future."""

    def __init__(self):
        self.closing = asyncio.get_running_loop().create_future()

    @property
    def is_closed(self) -> bool:
        return self.closing.done()

    def close(self, exc=aiormq.exceptions.ConnectionClosed):
        self.closing.set_exception(exc)


async def test_a_call_stuck_on_a_channel_that_closes_raises_instead_of_waiting_forever():
    channel = _Channel()
    never = asyncio.get_running_loop().create_future()  # like a drain future created after the close
    call = asyncio.ensure_future(guarded(channel, never))
    await asyncio.sleep(0)
    channel.close()
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await asyncio.wait_for(call, 5)


async def test_a_call_failed_by_the_channel_close_keeps_its_own_error():
    channel, pending = _Channel(), asyncio.get_running_loop().create_future()
    call = asyncio.ensure_future(guarded(channel, pending))
    await asyncio.sleep(0)
    channel.close(aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED - message size"))
    pending.set_exception(  # aiormq rejects the channel's futures in the same pass
        aiormq.exceptions.ChannelPreconditionFailed("PRECONDITION_FAILED - message size"))
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await asyncio.wait_for(call, 5)


async def test_a_closed_channel_refuses_at_once_and_the_callers_own_cancel_stays_a_cancel():
    channel = _Channel()
    channel.close()
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await guarded(channel, asyncio.sleep(10))
    open_channel = _Channel()
    call = asyncio.ensure_future(guarded(open_channel, asyncio.sleep(10)))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


# -- acks of one loop turn (``_rabbitmq_acks``) -----------------------------------------------------------------


class _Broker(_Channel):
    """A consumer channel as RabbitMQ sees it: its unsettled deliveries, and what each ack or nack settles.

    A frame takes effect when its call reaches the channel, except a nack that is told to wait (``gate``): it takes
    effect only when the gate opens, as if other frames overtook it on the way out. A frame for a tag that is not
    unsettled closes the channel the way RabbitMQ does (``PRECONDITION_FAILED - unknown delivery tag``).
    """

    def __init__(self):
        super().__init__()
        self.unsettled: set[int] = set()
        self.acked: list[int] = []  # in the order the broker settled them
        self.requeued: list[int] = []
        self.frames: list[tuple[str, int, bool]] = []
        self.gate: asyncio.Future | None = None
        self.hang = False  # basic_ack waits forever (a frame stuck behind a full write queue)
        self.full: Any = None  # when set, a callable: True makes this frame wait a loop turn for room in the queue
        self.unknown: list[int] = []

    def deliver(self, acks, *tags):
        for tag in tags:
            self.unsettled.add(tag)
            acks.delivered(tag)

    def _unknown(self, tag):
        self.unknown.append(tag)
        if not self.is_closed:
            self.close(aiormq.exceptions.ChannelPreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}"))

    async def basic_ack(self, tag, multiple=False, wait=True):
        self.frames.append(("ack", tag, multiple))
        if self.hang:
            await asyncio.get_running_loop().create_future()
        if self.full is not None and self.full():
            await asyncio.sleep(0)  # the frame takes its place in the queue only now
        if tag not in self.unsettled:
            return self._unknown(tag)
        settled = sorted(t for t in self.unsettled if t <= tag) if multiple else [tag]
        self.unsettled.difference_update(settled)
        self.acked += settled
        if wait:
            await asyncio.sleep(0)  # the drain

    async def basic_nack(self, tag, requeue=True):
        self.frames.append(("nack", tag, False))
        if self.gate is not None:
            await self.gate
        if tag not in self.unsettled:
            return self._unknown(tag)
        self.unsettled.discard(tag)
        self.requeued.append(tag)


@pytest.fixture
async def acks_on_broker():
    from asya_common.transport._rabbitmq_acks import Acks

    broker = _Broker()
    return Acks(broker), broker


async def test_acks_of_one_turn_leave_as_one_multiple_ack(acks_on_broker):
    acks, broker = acks_on_broker
    broker.deliver(acks, 1, 2, 3, 4, 5)
    await asyncio.gather(*(acks.ack(tag) for tag in (2, 1, 5, 3, 4)))
    assert broker.frames == [("ack", 5, True)]
    assert broker.unsettled == set() and sorted(broker.acked) == [1, 2, 3, 4, 5]


async def test_a_message_still_held_is_never_covered_and_holds_back_no_other_ack(acks_on_broker):
    acks, broker = acks_on_broker
    broker.deliver(acks, 1, 2, 3, 4, 5, 6)
    await asyncio.gather(*(acks.ack(tag) for tag in (1, 2, 4, 5, 6)))  # 3 is still being processed
    assert broker.unsettled == {3}
    assert ("ack", 2, True) in broker.frames and not any(m and t >= 3 for _, t, m in broker.frames)
    await acks.ack(3)
    assert broker.unsettled == set() and broker.frames[-1] == ("ack", 3, False)

    broker.deliver(acks, 7, 8, 9)  # the oldest one held: every other ack leaves on its own, at once
    await asyncio.gather(acks.ack(8), acks.ack(9))
    assert broker.unsettled == {7} and sorted(broker.frames[-2:]) == [("ack", 8, False), ("ack", 9, False)]


async def test_a_nack_stays_immediate_and_no_multiple_ack_overtakes_it(acks_on_broker):
    acks, broker = acks_on_broker
    broker.deliver(acks, 1, 2, 3, 4)
    broker.gate = asyncio.get_running_loop().create_future()
    nack = asyncio.ensure_future(acks.nack(2))
    await asyncio.sleep(0)
    assert broker.frames == [("nack", 2, False)]  # sent before the acks of the same turn, on its own
    await asyncio.gather(*(acks.ack(tag) for tag in (1, 3, 4)))  # its frame is still on the way
    broker.gate.set_result(None)
    await nack
    assert broker.requeued == [2] and 2 not in broker.acked and sorted(broker.acked) == [1, 3, 4]
    assert broker.unknown == []
    broker.deliver(acks, 5, 6)  # once the nack is out, the tag no longer holds a run back
    await asyncio.gather(acks.ack(5), acks.ack(6))
    assert broker.frames[-1] == ("ack", 6, True)


async def test_a_delivery_the_consumer_never_saw_is_never_covered(acks_on_broker):
    acks, broker = acks_on_broker
    broker.deliver(acks, 1, 2)
    broker.unsettled.add(3)  # delivered by the broker, lost on the way to the consumer
    broker.deliver(acks, 4, 5)
    await asyncio.gather(*(acks.ack(tag) for tag in (1, 2, 4, 5)))
    assert broker.unsettled == {3} and sorted(broker.acked) == [1, 2, 4, 5]


async def test_acks_on_a_closed_channel_raise_and_a_close_before_the_flush_fails_every_waiting_ack(acks_on_broker):
    acks, broker = acks_on_broker
    broker.deliver(acks, 1, 2, 3)
    broker.hang = True
    waiting = [asyncio.ensure_future(acks.ack(tag)) for tag in (1, 2, 3)]
    while not broker.frames:
        await asyncio.sleep(0)
    broker.close()
    for call in waiting:
        with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
            await asyncio.wait_for(call, 5)
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        await acks.ack(1)
    assert broker.acked == []


@pytest.mark.parametrize("seed", range(40))
async def test_random_interleavings_ack_exactly_what_was_acked(seed):
    """Deliveries, acks (some callers cancelled), nacks (some overtaken on the way out) and loop turns in a random
    order: the broker settles each acked message once, never one that was not acked (still held or returned),
    never sees a tag it already settled, and no ack waits forever."""
    import random

    from asya_common.transport._rabbitmq_acks import Acks

    rng, broker = random.Random(seed), _Broker()
    broker.full = lambda: rng.random() < 0.2
    acks, tasks, held, next_tag = Acks(broker), {}, [], 1
    acked, nacked, cancelled = set(), set(), set()
    for _ in range(300):
        step = rng.random()
        if step < 0.3 and len(held) < 40:
            broker.deliver(acks, next_tag)
            held.append(next_tag)
            next_tag += 1
        elif step < 0.65 and held:
            tag = held.pop(rng.randrange(len(held)))
            acked.add(tag)
            tasks[tag] = asyncio.ensure_future(acks.ack(tag))
        elif step < 0.75 and held:
            tag = held.pop(rng.randrange(len(held)))
            nacked.add(tag)
            broker.gate = asyncio.get_running_loop().create_future() if rng.random() < 0.5 else None
            tasks[tag] = asyncio.ensure_future(acks.nack(tag))
            if broker.gate is not None:
                asyncio.get_running_loop().call_later(rng.random() * 0.002, broker.gate.set_result, None)
        elif step < 0.78:
            waiting = [tag for tag, task in tasks.items() if tag in acked and not task.done()]
            if waiting:
                tag = rng.choice(waiting)
                tasks[tag].cancel()
                cancelled.add(tag)
        else:
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
    for tag in held:
        acked.add(tag)
        tasks[tag] = asyncio.ensure_future(acks.ack(tag))
    await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 10)
    assert broker.unknown == [], "a frame named a delivery tag that was already settled"
    assert [t.exception() for t in tasks.values() if not t.cancelled() and t.exception()] == []
    assert set(broker.acked) <= acked and acked - cancelled <= set(broker.acked)
    assert len(broker.acked) == len(set(broker.acked)) and sorted(broker.requeued) == sorted(nacked)
    broker.deliver(acks, next_tag)  # and the next ack still goes out
    await asyncio.wait_for(acks.ack(next_tag), 5)
    assert next_tag in broker.acked
