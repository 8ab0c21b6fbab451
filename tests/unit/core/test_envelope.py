"""The envelope wire format: parsing errors name the problem, routes advance, fan-out ids, SET ops."""

from __future__ import annotations

import pytest

from asya_common import envelope as env


def test_round_trip_keeps_unknown_keys_and_unicode():
    original = env.make_envelope(["a", "b"], {"text": "日本語 ✓"}, headers={"traceparent": "00-1"})
    original["custom"] = {"x": 1}
    assert env.loads(env.dumps(original)) == original


@pytest.mark.parametrize("body, reason", [
    (b"\xff\xfe", "not UTF-8"),
    (b"{nope", "not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"route": {"curr": "a"}}', "no 'id'"),
    (b'{"id": "", "route": {"curr": "a"}}', "no 'id'"),
    (b'{"id": "x"}', "no 'route'"),
    (b'{"id": "x", "route": {"prev": []}}', "route.curr"),
    (b'{"id": "x", "route": {"curr": "a", "next": "b"}}', "route.next"),
    (b'{"id": "x", "route": {"curr": "a"}, "headers": []}', "'headers' must be an object"),
])
def test_invalid_bodies_raise_an_error_naming_the_problem(body, reason):
    with pytest.raises(env.EnvelopeError) as caught:
        env.loads(body)
    assert reason in caught.value.reason


def test_advance_moves_curr_to_prev_and_pops_next():
    e = env.make_envelope(["a", "b", "c"], None)
    env.advance(e)
    assert e["route"] == {"prev": ["a"], "curr": "b", "next": ["c"]}
    env.advance(e)
    env.advance(e)
    assert e["route"] == {"prev": ["a", "b", "c"], "curr": env.HAPPY_END, "next": []}


def test_fanout_ids():
    assert [env.fanout_id("abc", i) for i in range(3)] == ["abc", "abc-1", "abc-2"]


def test_set_route_next_and_headers():
    e = env.make_envelope(["a", "b"], None)
    env.apply_set(e, ".route.next", ["store"])
    env.apply_set(e, ".headers.x-team", "vision")
    assert e["route"]["next"] == ["store"] and e["headers"]["x-team"] == "vision"


@pytest.mark.parametrize("path, value, message", [
    (".route.next", "store", "list of actor names"),
    (".route.next", ["happy-end"], "terminal"),
    (".route.prev", ["x"], "unsupported SET path"),
    (".headers.", 1, "unsupported SET path"),
])
def test_bad_set_operations_are_route_errors(path, value, message):
    with pytest.raises(env.RouteError, match=message):
        env.apply_set(env.make_envelope(["a"], None), path, value)


def test_route_rewrite_of_prev_or_curr_is_rejected():
    before = env.make_envelope(["a", "b"], None)
    after = env.copy_envelope(before)
    after["route"]["next"] = ["z"]
    env.check_route_rewrite(before, after)
    after["route"]["curr"] = "z"
    with pytest.raises(env.RouteError, match="route.curr"):
        env.check_route_rewrite(before, after)


def test_users_cannot_route_to_terminal_actors():
    with pytest.raises(env.RouteError, match="terminal"):
        env.make_envelope(["a", "error-end"], None)


def test_malformed_body_is_kept_byte_exact_for_replay():
    body = b"\x00\xffnot an envelope"
    wrapped = env.wrap_malformed(body, "body is not UTF-8", actor="judge", message_id="m-1")
    assert wrapped["id"] == "m-1"
    assert wrapped["route"]["curr"] == env.ERROR_END
    assert wrapped["headers"][env.H_ERROR]["message"] == "body is not UTF-8"
    assert env.raw_body(env.loads(env.dumps(wrapped))) == body


def test_malformed_body_with_an_id_keeps_that_id():
    wrapped = env.wrap_malformed(b'{"id": "keep-me"}', "no route", actor="a")
    assert wrapped["id"] == "keep-me"


def test_queue_names():
    assert env.queue_name("judge") == "asya-judge"
    assert env.dlq_name("judge", "team-") == "team-judge-dlq"
