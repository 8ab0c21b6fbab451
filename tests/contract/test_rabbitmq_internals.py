"""RabbitMQ transport internals that need no server: delay rounding, reading queue arguments back, the channel guard."""

from __future__ import annotations

import asyncio

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
