"""The automatic prefetch holds about 20 ms of handler work: the table in docs/configuration.md."""

from __future__ import annotations

import pytest

from asya_sidecar.prefetch import HeldLimit
from asya_sidecar.settings import SidecarSettings


def held_after(calls: list[float], concurrency: int = 1, prefetch: int = 0) -> int:
    limit = HeldLimit(concurrency, prefetch)
    for seconds in calls:
        limit.observe(seconds)
    return limit.current


@pytest.mark.parametrize("call_seconds, held", [(None, 2), (0.020, 2), (3.0, 2), (0.005, 5), (0.0025, 9),
                                                (0.001, 21), (0.0006, 32), (0.0001, 32)])
def test_automatic_prefetch_at_concurrency_1_follows_the_documented_table(call_seconds, held):
    assert held_after([] if call_seconds is None else [call_seconds] * 30) == held


def test_automatic_prefetch_grows_with_concurrency_and_never_below_one_extra():
    assert held_after([0.0005] * 30, concurrency=8) == 32  # max(32, 4 x 8)
    assert held_after([0.0005] * 30, concurrency=16) == 64  # max(32, 4 x 16)
    assert held_after([10.0] * 30, concurrency=8) == 9


def test_a_slowing_handler_stops_holding_extra_messages():
    limit = HeldLimit(1)
    for _ in range(30):
        limit.observe(0.0005)
    assert limit.current == 32
    for _ in range(30):  # the model got slow: a new replica should get the messages, not this one
        limit.observe(2.0)
    assert limit.current == 2


def test_a_fixed_prefetch_is_used_as_given():
    assert held_after([0.0005] * 30, concurrency=2, prefetch=3) == 3
    assert held_after([5.0] * 30, concurrency=2, prefetch=3) == 3


def test_a_prefetch_below_the_concurrency_is_refused():
    with pytest.raises(ValueError, match="ASYA_PREFETCH must be 0 \\(automatic\\) or >= ASYA_CONCURRENCY=4, got 2"):
        SidecarSettings(actor="a", concurrency=4, prefetch=2)
    with pytest.raises(ValueError, match="got -1"):
        SidecarSettings(actor="a", prefetch=-1)
