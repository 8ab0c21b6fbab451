"""Sidecar <-> runtime protocol: length-prefixed JSON frames over one persistent Unix socket.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. The sidecar keeps
one connection open and may have several requests in flight; every frame carries the request ``id``
so answers can arrive in any order.

Sidecar -> runtime::

    {"id": "7", "op": "call", "envelope": {...}}       # process one envelope
    {"id": "8", "op": "ping"}                          # readiness check
    {"id": "9", "op": "shutdown"}                      # exit now (abandoned call: timeout)

Runtime -> sidecar (zero or more ``fly`` frames, then exactly one ``result`` or ``error``)::

    {"id": "7", "type": "fly", "data": {...}}          # partial result, streamed live
    {"id": "7", "type": "result", "outputs": [envelope, ...]}
    {"id": "7", "type": "error", "error": {"type": "ValueError", "message": "...", "traceback": "..."}}
    {"id": "8", "type": "pong", "handler": "mod.fn", "pid": 123}

``outputs`` are full envelopes whose ``route.curr`` is still the current actor: the runtime applies
payload results and ``SET`` operations, the sidecar then advances routes and assigns fan-out ids.
An empty ``outputs`` list means the handler returned ``None``: the branch ends at happy-end.

Standard library only (used by the runtime). Both asyncio stream helpers and plain helpers exist
so each side uses what fits its event loop.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from asya_common import strictjson

HEADER = struct.Struct(">I")
# Largest frame either side accepts; a peer's buffered bytes never exceed it. The runtime lowers it
# to its largest allowed message (ASYA_MAX_MESSAGE_BYTES); this is only the absolute ceiling.
MAX_FRAME_BYTES = 512 * 1024 * 1024
# Room for the frame's own keys around the envelope(s) it carries.
FRAME_OVERHEAD_BYTES = 64 * 1024
# A frame's body must follow its header within this many seconds (a stalled peer is cut off).
FRAME_BODY_TIMEOUT = 30.0
# Frames nest envelopes two levels deeper than a message body (frame -> outputs -> envelope).
_FRAME_DEPTH = strictjson.MAX_DEPTH + 4
DEFAULT_SOCKET_PATH = "/var/run/asya/asya-runtime.sock"
RESTART_EXIT_CODE = 75  # runtime exit code after a "shutdown" op: "restart me"


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or closed the connection mid-frame."""


def encode_frame(message: dict[str, Any], max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Serialises one message into a length-prefixed frame.

    Raises:
        strictjson.NotStrictJSON: The message holds NaN/Infinity, a lone surrogate or is too deep.
        TypeError: The message holds something JSON has no type for.
        ProtocolError: The frame would exceed ``max_bytes``.
    """
    data = strictjson.dumps(message)
    if len(data) > max_bytes:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    return HEADER.pack(len(data)) + data


def call_frame(request_id: str, envelope_json: bytes, max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """A ``call`` frame around an envelope that is already strict JSON (a message body as received).

    Equal to ``encode_frame({"id": request_id, "op": "call", "envelope": ...})`` up to key spacing, without
    parsing and serialising the envelope again. ``request_id`` must be plain ASCII without quotes or
    backslashes (the sidecar's counter).

    Raises:
        ProtocolError: The frame would exceed ``max_bytes``.
    """
    data = b'{"id":"%s","op":"call","envelope":%s}' % (request_id.encode("ascii"), envelope_json)
    if len(data) > max_bytes:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    return HEADER.pack(len(data)) + data


def decode_body(data: bytes) -> dict[str, Any]:
    """Parses a frame body; raises ProtocolError for anything but a strict-JSON object."""
    try:
        message = strictjson.loads(data, max_depth=_FRAME_DEPTH, what="frame")
    except strictjson.NotStrictJSON as exc:
        raise ProtocolError(exc.reason) from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES,
                     body_timeout: float | None = FRAME_BODY_TIMEOUT) -> dict[str, Any] | None:
    """Reads one frame; returns None on a clean end of stream between frames.

    Waiting for a header has no deadline (an idle connection is fine); once a header has arrived,
    the rest of the frame must follow within ``body_timeout`` seconds.

    Raises:
        ProtocolError: Bad frame, a frame over ``max_bytes``, or a peer stalled inside a frame.
    """
    try:
        first = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return None
    try:
        async with asyncio.timeout(body_timeout):
            try:
                header = first + await reader.readexactly(HEADER.size - 1)
            except asyncio.IncompleteReadError:
                raise ProtocolError("connection closed inside a frame header") from None
            (length,) = HEADER.unpack(header)
            if length > max_bytes:
                raise ProtocolError(f"frame of {length} bytes exceeds the {max_bytes}-byte limit")
            try:
                data = await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise ProtocolError("connection closed inside a frame body") from None
    except TimeoutError:
        raise ProtocolError(f"peer stalled: frame not complete within {body_timeout:g}s") from None
    return decode_body(data)


async def write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Writes one frame and waits until it is flushed to the socket."""
    writer.write(encode_frame(message))
    await writer.drain()
