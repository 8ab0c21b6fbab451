"""The sidecar's route-level error branch (``on_error``): which failures it catches and where they go."""

from __future__ import annotations

from asya_common import envelope as env
from asya_sidecar.error_routes import H_CAUGHT, caught_envelope


def _failing(prev: list[str], on_error) -> dict:
    e = env.make_envelope(["flaky", "inc", "store"], {"x": 3})
    e["route"]["prev"] = prev
    e["headers"][env.H_ATTEMPT] = 3
    e["on_error"] = on_error
    return e


ENTRY = {"errors": ["ValueError"], "hops": [1, 3], "next": ["fallback", "store"]}


def test_matching_error_continues_on_the_except_route():
    caught = caught_envelope(_failing(["router"], [ENTRY]), {"type": "ValueError", "message": "bad"}, "flaky")
    assert caught["route"] == {"prev": ["router", "flaky"], "curr": "fallback", "next": ["store"]}
    assert caught["payload"] == {"x": 3}  # what the failed call received
    assert "on_error" not in caught and env.H_ATTEMPT not in caught["headers"]
    assert caught["headers"][H_CAUGHT] == {"actor": "flaky", "type": "ValueError", "message": "bad"}


def test_base_class_user_class_and_catch_all_match():
    e = _failing(["router"], [{**ENTRY, "errors": ["LookupError"]}])
    assert caught_envelope(e, {"type": "KeyError", "mro": ["KeyError", "LookupError", "Exception"]}, "x")
    e = _failing(["router"], [{**ENTRY, "errors": ["BadScan"]}])
    assert caught_envelope(e, {"type": "handlers.BadScan"}, "x")
    e = _failing(["router"], [{**ENTRY, "errors": ["Exception"]}])
    assert caught_envelope(e, {"type": "anything.AtAll"}, "x")


def test_other_error_type_or_hop_outside_the_window_goes_to_error_end():
    assert caught_envelope(_failing(["router"], [ENTRY]), {"type": "KeyError"}, "flaky") is None
    assert caught_envelope(_failing(["router", "a", "b"], [ENTRY]), {"type": "ValueError"}, "x") is None
    assert caught_envelope(_failing([], [ENTRY]), {"type": "ValueError"}, "x") is None


def test_malformed_entries_are_ignored_and_terminal_targets_refused():
    for bad in ("x", {"errors": "ValueError", "hops": [1, 3], "next": ["a"]}, {**ENTRY, "hops": [1]},
                {**ENTRY, "next": ["error-end"]}):
        assert caught_envelope(_failing(["router"], [bad]), {"type": "ValueError"}, "x") is None


def test_empty_except_route_finishes_at_happy_end():
    caught = caught_envelope(_failing(["router"], [{**ENTRY, "next": []}]), {"type": "ValueError"}, "flaky")
    assert caught["route"]["curr"] == env.HAPPY_END
