"""Issue 10, items 1, 2 and 6 at the envelope level: every hostile body is one clear EnvelopeError.

Before the fix these bodies parsed (NaN, Infinity, 1e400, a lone surrogate) and failed later while
being re-encoded, or raised RecursionError/ValueError instead of EnvelopeError: the sidecar's message
task crashed and the message was redelivered until the broker dead-lettered it.
"""

from __future__ import annotations

import json

import pytest

from asya_common import envelope as env

DEEP = b'{"id": "x", "route": {"curr": "a"}, "payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("body, reason", [
    (b'{"id": "x", "route": {"curr": "a"}, "payload": NaN}', "NaN"),
    (b'{"id": "x", "route": {"curr": "a"}, "payload": -Infinity}', "Infinity"),
    (b'{"id": "x", "route": {"curr": "a"}, "payload": 1e400}', "out of range"),
    (b'{"id": "x", "route": {"curr": "a"}, "headers": {"x-asya-not-before": Infinity}}', "Infinity"),
    (b'{"id": "x", "route": {"curr": "a"}, "payload": "\\ud800"}', "surrogate"),
    (b'{"id": "\\udfff", "route": {"curr": "a"}}', "surrogate"),
    (DEEP, "nested too deeply"),
    (b'{"id": "x", "route": {"curr": "a"}, "payload": ' + b"1" * 5000 + b"}", "not valid JSON"),
    (b'{"id": "x", "route": {"curr": "a", "next": ["b-dlq"]}}', "dead-letter queue"),
    (b'{"id": "x", "route": {"curr": "b-dlq"}}', "dead-letter queue"),
    (json.dumps({"id": "x", "route": {"curr": "a", "next": ["r" * 300]}}).encode(), "limit is 200"),
])
def test_hostile_bodies_are_one_envelope_error(body, reason):
    with pytest.raises(env.EnvelopeError) as caught:
        env.loads(body)
    assert reason in caught.value.reason


def test_a_wrapped_hostile_body_is_always_serialisable():
    for body in (DEEP, b'{"id": "\\ud800", "route": {"curr": "a"}, "payload": NaN}'):
        wrapped = env.wrap_malformed(body, "reason", actor="a", message_id="m-\udc80")
        assert env.raw_body(env.loads(env.dumps(wrapped))) == body
        assert "\\" not in wrapped["id"] and wrapped["id"] != "\ud800"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "\ud800"])
def test_dumps_refuses_what_loads_refuses(value):
    with pytest.raises(ValueError):
        env.dumps(env.make_envelope(["a"], {"v": value}))


@pytest.mark.parametrize("next_route, reason", [(["x-dlq"], "dead-letter queue"), (["y" * 201], "limit is 200")])
def test_set_route_next_never_targets_a_dlq_or_an_unroutable_name(next_route, reason):
    with pytest.raises(env.RouteError, match=reason):
        env.apply_set(env.make_envelope(["a"], None), ".route.next", next_route)
    with pytest.raises(env.RouteError, match=reason):
        env.make_envelope(next_route, None)


@pytest.mark.parametrize("name", ["happy-end", "error-end", "judge-dlq"])
def test_reserved_actor_names_are_named(name):
    assert name in env.actor_name_problem(name)
    assert env.actor_name_problem("judge") is None
