"""The sidecar's fast JSON path (orjson behind strictjson) and the cheaper copies give the same results.

Every input is parsed and serialised twice, with the standard library only and with the sidecar's
codec installed; values and error messages must be identical (docs/performance.md).
"""

from __future__ import annotations

import pytest

from asya_common import envelope as env, strictjson
from asya_sidecar import fastjson

BODIES = [
    b'{"id":"a","route":{"curr":"x"},"payload":{"n":1,"f":1.5,"s":"\xc3\xa9","l":[1,2,null]}}',
    b"NaN", b"[Infinity]", b"[1e400]", b"[-1e400]", b"[1e-400]", b'["\\ud800"]', b'["ok \\u00e9"]',
    b"[123456789012345678901234567890]", b"[-9223372036854775809]", b"[18446744073709551615]",
    b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", b"\xff", b'{"a":1', b"[" * 300 + b"]" * 300,
    b"[" * 255 + b"]" * 255, b"[" * 257 + b"]" * 257, b" [1] ", b"-0", b"1.0", b'"\\\\u"',
]
VALUES = [
    {"a": None}, {"a": float("nan")}, [float("inf")], {"big": 2**70}, {1: "int key"}, ("tuple", 1),
    {"s": "\ud800"}, {"e": "é", "f": 1e16, "g": -0.0}, [[[[1]]]],
]


def _outcome(fn, arg):
    try:
        return ("ok", fn(arg))
    except Exception as exc:  # noqa: BLE001 - compared as type + message
        return (type(exc).__name__, str(exc))


@pytest.fixture
def fast():
    assert fastjson.install(), "orjson is a sidecar dependency (images/sidecar/pyproject.toml)"
    yield
    strictjson.use_codec(None, None)


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_loads_is_identical_with_the_fast_codec(body):
    plain = _outcome(strictjson.loads, body)
    fastjson.install()
    try:
        faster = _outcome(strictjson.loads, body)
    finally:
        strictjson.use_codec(None, None)
    assert faster == plain
    assert repr(faster) == repr(plain)  # 2**70 stays an int, -0.0 stays -0.0


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_is_identical_with_the_fast_codec(value):
    plain = _outcome(strictjson.dumps, value)
    fastjson.install()
    try:
        faster = _outcome(strictjson.dumps, value)
    finally:
        strictjson.use_codec(None, None)
    if plain[0] == "ok":  # byte-for-byte may differ in float spelling (1e+16 / 1e16); the value may not
        assert faster[0] == "ok" and strictjson.loads(faster[1]) == strictjson.loads(plain[1])
    else:
        assert faster == plain


def test_nan_is_never_written_as_null(fast):
    with pytest.raises(strictjson.NotStrictJSON):
        strictjson.dumps({"payload": {"x": float("nan")}})


def test_a_deep_body_is_still_refused_as_an_envelope(fast):
    with pytest.raises(env.EnvelopeError, match="nested too deeply"):
        env.loads(b'{"id":"a","route":{"curr":"x"},"payload":' + b"[" * 300 + b"]" * 300 + b"}")


def test_copy_envelope_shares_no_mutable_state():
    class Handle:
        def __init__(self):
            self.items = [1]

    original = env.make_envelope(["a", "b"], {"list": [1, {"d": 2}], "obj": Handle()}, headers={"h": {"k": 1}})
    copied = env.copy_envelope(original)
    copied["payload"]["list"][1]["d"] = 3
    copied["route"]["next"].append("c")
    copied["headers"]["h"]["k"] = 2
    copied["payload"]["obj"].items.append(2)
    assert original["payload"]["list"][1]["d"] == 2 and original["route"]["next"] == ["b"]
    assert original["headers"]["h"]["k"] == 1 and original["payload"]["obj"].items == [1]
