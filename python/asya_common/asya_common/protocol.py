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
import json
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 512 * 1024 * 1024
DEFAULT_SOCKET_PATH = "/var/run/asya/asya-runtime.sock"
RESTART_EXIT_CODE = 75  # runtime exit code after a "shutdown" op: "restart me"


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or closed the connection mid-frame."""


def encode_frame(message: dict[str, Any]) -> bytes:
    """Serialises one message into a length-prefixed frame."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(data)) + data


def decode_body(data: bytes) -> dict[str, Any]:
    """Parses a frame body; raises ProtocolError for anything but a JSON object."""
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """Reads one frame; returns None on a clean end of stream between frames."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a frame header") from None
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    try:
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a frame body") from None
    return decode_body(data)


async def write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Writes one frame and waits until it is flushed to the socket."""
    writer.write(encode_frame(message))
    await writer.drain()
