"""Fuzz targets (issue 10, "Also"): the envelope parser and the socket frame decoder never fail in an
unplanned way. Seeded with every hostile input the review found; bounded (``max_examples``) so it
runs in ``make test`` in seconds.

Contract checked on every input: ``envelope.loads`` returns an envelope that survives ``dumps`` and
``loads`` unchanged, or raises ``EnvelopeError`` (nothing else); a wrapped malformed body always
serialises and keeps its bytes; ``protocol.read_frame`` returns a frame, ``None`` or raises
``ProtocolError``; an error-end record shrunk by the sidecar always fits its limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asya_common import envelope as env
from asya_common import protocol
from asya_sidecar import finality

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    b'{"id": "x", "route": {"curr": "a"}, "payload": "\\ud800"}',
    b'{"id": "\\udfff", "route": {"curr": "a"}}',
    b'{"id": "x", "route": {"curr": "a"}, "payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"id": "x", "route": {"curr": "a"}, "payload": NaN}',
    b'{"id": "x", "route": {"curr": "a"}, "headers": {"x-asya-not-before": Infinity}}',
    b'{"id": "x", "route": {"curr": "a"}, "headers": {"x-asya-not-before": 1e15}}',
    b'{"id": "x", "route": {"curr": "a"}, "payload": 1e400}',
    b'{"id": "x", "route": {"curr": "a", "next": ["' + b"r" * 300 + b'"]}}',
    b'{"id": "x", "route": {"curr": "a", "next": ["x-dlq"]}}',
    b'{"id": "x", "route": {"curr": "a"}, "payload": ' + b"9" * 5000 + b"}",
    b"\xff\xfe\x00",
    b"",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=12), "route": st.fixed_dictionaries(
        {"curr": st.text(min_size=1, max_size=10), "next": st.lists(st.text(min_size=1, max_size=10), max_size=3)})},
    optional={"payload": json_values, "headers": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
              "parent_id": json_values})


def _bodies_from(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _check_body(body: bytes) -> None:
    try:
        parsed = env.loads(body)
    except env.EnvelopeError:
        wrapped = env.wrap_malformed(body, "fuzz", actor="a", message_id="m")
        assert env.raw_body(env.loads(env.dumps(wrapped))) == body
        return
    assert env.loads(env.dumps(parsed)) == parsed


@FUZZ
@given(st.binary(max_size=2000))
@example(SEEDS[0]).via("lone surrogate in the payload")
@example(SEEDS[1]).via("lone surrogate in the id")
@example(SEEDS[2]).via("100,000 levels of nesting")
@example(SEEDS[3]).via("NaN")
@example(SEEDS[4]).via("not-before Infinity")
@example(SEEDS[5]).via("not-before 1e15")
@example(SEEDS[6]).via("1e400")
@example(SEEDS[7]).via("route name over 255 bytes")
@example(SEEDS[8]).via("route to a DLQ")
@example(SEEDS[9]).via("5000-digit integer")
@example(SEEDS[10]).via("not UTF-8")
@example(SEEDS[11]).via("empty")
def test_envelope_parser_raises_only_envelope_error(body):
    _check_body(body)


@FUZZ
@given(st.one_of(envelopes, json_values))
def test_envelope_parser_on_json_shaped_input(value):
    _check_body(_bodies_from(value))


async def _decode(data: bytes, max_bytes: int = 1 << 20):
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    try:
        while (frame := await protocol.read_frame(reader, max_bytes, body_timeout=5)) is not None:
            frames.append(frame)
    except protocol.ProtocolError:
        pass
    return frames


@FUZZ
@given(st.binary(max_size=600), st.one_of(envelopes, json_values))
@example(struct.pack(">I", 400 * 1024 * 1024), None).via("frame announcing 400 MB")
@example(struct.pack(">I", 7) + b"[1,NaN]", None).via("NaN in a frame")
@example(struct.pack(">I", 10) + b'{"id": "\\', None).via("truncated frame")
def test_frame_decoder_returns_frames_none_or_protocol_error(noise, value):
    frames = asyncio.run(_decode(noise))
    assert all(isinstance(f, dict) for f in frames)
    body = _bodies_from({"id": "1", "type": "result", "outputs": [value]})
    decoded = asyncio.run(_decode(struct.pack(">I", len(body)) + body))
    assert decoded in ([], [json.loads(body)])  # strict frames decode exactly; others are refused


@FUZZ
@given(envelopes, st.binary(min_size=0, max_size=20_000), st.integers(min_value=4096, max_value=16_384))
def test_a_shrunk_error_end_record_always_fits(envelope, raw, limit):
    attempts = [{"attempt": i, "type": "X", "message": "a" * 900, "traceback": "b" * 900} for i in range(30)]
    source = {"id": "e", "route": {"prev": [], "curr": "a", "next": []}, "headers": {}, "payload": None}
    failed = env.to_error_end(source, {"actor": "a", "type": "X", "message": "m" * 5000, "traceback": "t" * 9000,
                                       "attempts": attempts})
    failed["headers"][env.H_RAW_BODY] = {"encoding": "base64", "data": base64.b64encode(raw).decode()}
    if "payload" in envelope and raw[:1] == b"p":  # sometimes a real payload instead of a kept raw body
        failed["headers"].pop(env.H_RAW_BODY)
        failed["payload"] = json.loads(json.dumps(envelope["payload"], allow_nan=True).replace("NaN", "0")
                                       .replace("-Infinity", "0").replace("Infinity", "0"))
    body = env.dumps(failed)
    out = finality.fit_final(failed, body, limit)
    assert len(out) <= limit
    kept = env.loads(out)
    if env.H_RAW_BODY in failed["headers"]:
        assert raw.startswith(env.raw_body(kept))
    assert kept["headers"][env.H_ERROR]["type"] == "X" and "truncated" in kept["headers"][env.H_ERROR]["message"]
