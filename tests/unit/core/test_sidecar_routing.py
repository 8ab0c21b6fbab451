"""Sidecar routing rules and backoff, as pure functions."""

from __future__ import annotations

import random

from asya_common import envelope as env
from asya_sidecar import routing
from asya_sidecar.backoff import retry_delay
from asya_sidecar.settings import RetryPolicy


def _policy(**kw):
    return RetryPolicy(**{"max_attempts": 5, "initial_interval": 1.0, "max_interval": 10.0, "jitter": 0.0, **kw})


def test_exponential_backoff_doubles_and_caps():
    assert [retry_delay(_policy(), n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_constant_backoff():
    assert {retry_delay(_policy(backoff="constant"), n) for n in range(1, 5)} == {1.0}


def test_jitter_spreads_within_bounds_and_never_exceeds_max():
    rng = random.Random(7)
    delays = [retry_delay(_policy(jitter=0.2), 2, rng) for _ in range(200)]
    assert min(delays) >= 1.6 and max(delays) <= 2.4 and len(set(delays)) > 100
    assert max(retry_delay(_policy(jitter=0.5), 10, rng) for _ in range(100)) <= 10.0


def test_retry_envelope_carries_attempt_count_and_every_error():
    source = env.make_envelope(["a", "b"], {"x": 1})
    first = routing.retry_envelope(source, {"type": "E", "message": "one"}, 1, 0.5)
    second = routing.retry_envelope(first, {"type": "E", "message": "two"}, 2, 1.0)
    assert routing.attempt_of(second) == 3
    assert [e["message"] for e in second["headers"][env.H_ATTEMPT_ERRORS]] == ["one", "two"]
    assert routing.not_before(second) > routing.not_before(first)
    assert second["route"] == source["route"] and "x-asya-attempt" not in source["headers"]


def test_failed_envelope_records_actor_and_all_attempts():
    source = routing.retry_envelope(env.make_envelope(["a", "b"], {"x": 1}), {"type": "E", "message": "one"}, 1, 0)
    failed = routing.failed_envelope(source, {"type": "KeyError", "message": "two", "traceback": "tb"}, 2, "a")
    error = failed["headers"][env.H_ERROR]
    assert (error["actor"], error["type"], error["traceback"]) == ("a", "KeyError", "tb")
    assert [a["attempt"] for a in error["attempts"]] == [1, 2]
    assert failed["route"]["curr"] == env.ERROR_END and failed["route"]["prev"] == ["a"]
    assert env.H_ATTEMPT_ERRORS not in failed["headers"] and failed["payload"] == {"x": 1}


def test_outputs_get_fanout_ids_and_attempt_headers_are_dropped():
    source = routing.retry_envelope(env.make_envelope(["a", "b"], None), {"type": "E"}, 1, 0)
    outputs = [env.copy_envelope(source) for _ in range(3)]
    routed = routing.route_outputs(source, outputs)
    assert [o["id"] for o in routed] == [source["id"], f"{source['id']}-1", f"{source['id']}-2"]
    assert [o.get("parent_id") for o in routed] == [None, source["id"], source["id"]]
    assert all(o["route"]["curr"] == "b" and not any(h.startswith("x-asya-att") for h in o["headers"])
               for o in routed)


def test_no_outputs_sends_the_input_to_happy_end():
    source = env.make_envelope(["a", "b"], {"keep": True})
    (only,) = routing.route_outputs(source, [])
    assert only["route"] == {"prev": ["a"], "curr": env.HAPPY_END, "next": ["b"]}
    assert only["payload"] == {"keep": True}
