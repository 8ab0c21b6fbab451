"""The runtime's frame reading and writing: the blocking FrameReader, strict parsing of bytes and the answer frames.

The runtime reads frames with ``protocol.FrameReader`` (a blocking socket, a thread per connection)
and parses them with ``protocol.decode_body`` (``strictjson.loads`` on the bytes); it encodes results with ``asya_runtime.frames``, which
checks strictness on the encoded text. Each must behave exactly like the path it replaced: the same
values, the same limits and the same error messages.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest
from asya_common import protocol, strictjson

from asya_runtime import frames
from asya_runtime.invoke import ResultError


def _pair(**options) -> tuple[socket.socket, protocol.FrameReader]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return theirs, protocol.FrameReader(ours, **options)


def _frame(message: dict) -> bytes:
    return protocol.encode_frame(message)


def test_frames_split_anywhere_or_sent_together_are_read_whole_and_in_order():
    peer, reader = _pair()
    data = b"".join(_frame({"id": str(i), "op": "ping", "pad": "x" * (i * 997)}) for i in range(40))
    sender = threading.Thread(target=lambda: [peer.sendall(data[i:i + 613]) for i in range(0, len(data), 613)])
    sender.start()
    got = [reader.read() for _ in range(40)]
    sender.join()
    assert [m["id"] for m in got] == [str(i) for i in range(40)] and got[39]["pad"] == "x" * 39 * 997
    peer.sendall(_frame({"id": "a"}) + _frame({"id": "b"}))
    assert reader.read()["id"] == "a" and reader.read()["id"] == "b"
    peer.close()
    assert reader.read() is None  # a clean end between frames


@pytest.mark.parametrize("partial", [b"\x00\x00", struct.pack(">I", 100) + b'{"id"'])
def test_a_peer_stalled_inside_a_frame_is_cut_off_after_the_body_timeout(partial):
    peer, reader = _pair(body_timeout=0.3)
    peer.sendall(partial)
    started = time.monotonic()
    with pytest.raises(protocol.ProtocolError, match=r"peer stalled: frame not complete within 0.3s"):
        reader.read()
    assert time.monotonic() - started >= 0.25


def test_an_idle_connection_between_frames_has_no_deadline():
    peer, reader = _pair(body_timeout=0.2)
    threading.Timer(0.6, lambda: peer.sendall(_frame({"id": "late"}))).start()
    assert reader.read()["id"] == "late"


def test_a_frame_over_the_limit_is_refused_from_its_header():
    peer, reader = _pair(max_bytes=1024)
    peer.sendall(struct.pack(">I", 400 * 1024 * 1024))
    with pytest.raises(protocol.ProtocolError, match="frame of 419430400 bytes exceeds the 1024-byte limit"):
        reader.read()


@pytest.mark.parametrize("partial, where", [(b"\x00\x00", "header"), (struct.pack(">I", 50) + b"{", "body")])
def test_a_peer_gone_inside_a_frame_is_a_protocol_error(partial, where):
    peer, reader = _pair()
    peer.sendall(partial)
    peer.close()
    with pytest.raises(protocol.ProtocolError, match=f"connection closed inside a frame {where}"):
        reader.read()


def test_idle_is_true_only_while_the_reader_waits_for_bytes():
    peer, reader = _pair(track_idle=True)
    assert not reader.idle
    got: list[dict] = []
    thread = threading.Thread(target=lambda: got.append(reader.read()))
    thread.start()
    deadline = time.monotonic() + 10
    while not reader.idle and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.idle  # waiting in poll, nothing taken from the socket
    peer.sendall(_frame({"id": "x"}))
    thread.join(10)
    assert got == [{"id": "x"}] and not reader.idle  # handed over; idle again only when it waits


BODIES = [
    b'{"id":"1","op":"call","envelope":{"id":"e","route":{"curr":"a"},"payload":{"f":1.5,"i":12}}}',
    '{"t":"żółć 🚀 \\u00e9 \\n"}'.encode(),
    b'{"s":"\\ud83d\\ude80"}',  # an escaped surrogate pair is a valid character
    b'{"s":"\\ud800"}',  # a lone escaped surrogate
    b'{"x":NaN}', b'{"x":-Infinity}', b'{"x":1e400}', b'{"x":1e308}',
    b'[1,2]', b'"text"', b"{", b"", b"\xff\xfe", "\ufeff{}".encode(),
    b'{"n":' + b"9" * 5000 + b"}",
    b'{"d":' + b"[" * 300 + b"]" * 300 + b"}",
    b'{"d":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"d":' + b"[" * 250 + b"]" * 250 + b', "brackets": "' + b"[{" * 200 + b'"}',
]


@pytest.mark.parametrize("body", BODIES)
def test_a_frame_read_as_bytes_gives_what_its_text_gives(body):
    """Bytes skip the surrogate scan (strict UTF-8 has none): the result and the error stay those of the text."""
    def outcome(data):
        try:
            return "ok", strictjson.loads(data, max_depth=protocol._FRAME_DEPTH, what="frame")
        except strictjson.NotStrictJSON as exc:
            return "error", exc.reason

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        assert outcome(body)[0] == "error" and "frame is not UTF-8" in outcome(body)[1]
        return
    assert outcome(body) == outcome(text)


RESULTS = [
    [{"payload": {"a": [1, 2.5, None, True, "żółć"], "pad": "x" * 900}}],
    [{"payload": float("nan")}], [{"payload": {"k": float("-inf")}}], [{"payload": {float("inf"): 1}}],
    [{"payload": "\udc80"}], [{"payload": {"\ud800": 1}}],
    [{"payload": {"when": object()}}], [{"payload": {(1, 2): 1}}], [{"payload": {"t": (1, 2)}}],
    [{"payload": {"x": float("nan"), "when": object()}}],
]


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("outputs", RESULTS + [[{"payload": _deep(n)}] for n in (250, 255, 256, 257, 1000, 5000)])
def test_result_frames_are_refused_exactly_as_the_tree_walk_did(outputs):
    def old(request_id, value):  # the runtime before: check the tree, then encode
        try:
            strictjson.check(value, "handler result", strictjson.MAX_DEPTH + 1)
        except strictjson.NotStrictJSON as exc:
            return "error", f"{exc.reason}; the result must be strict JSON"
        try:
            return "ok", protocol.encode_frame({"id": request_id, "type": "result", "outputs": value})
        except (TypeError, ValueError, RecursionError) as exc:
            return "error", f"handler result is not JSON-serialisable: {exc}"

    def new(request_id, value):
        try:
            return "ok", frames.result_frame(request_id, value)
        except ResultError as exc:
            return "error", str(exc)

    assert new("7", outputs) == old("7", outputs)


def test_fly_frames_use_the_payload_depth_limit():
    assert json.loads(frames.fly_frame("1", _deep(256))[4:])["type"] == "fly"
    with pytest.raises(ResultError, match=r"FLY data is nested too deeply .*; the result must be strict JSON"):
        frames.fly_frame("1", _deep(257))
