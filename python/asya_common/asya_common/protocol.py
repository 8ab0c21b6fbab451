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
so each side uses what fits its event loop; :class:`FrameReader` reads frames from a blocking socket
(the runtime's threaded server).
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time
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


class FrameReader:
    """Reads frames from a blocking socket, with the same limits as :func:`read_frame`.

    Waiting for a frame's first byte has no deadline (an idle connection is fine); once part of a
    frame has arrived, the rest must follow within ``body_timeout`` seconds (a ``poll`` before each
    further ``recv``, so the socket itself stays blocking and other threads may keep writing to it).
    A frame that arrives whole costs one ``recv``; several frames that arrive together are split
    from one buffer. Not thread-safe: one reader per socket.

    ``idle`` (with ``track_idle=True``) tells another thread whether the reader has handled all it
    took from the socket: it is True only while the reader waits in ``poll`` for more bytes, so "the
    socket has nothing to read (a ``poll`` with timeout 0), and then ``idle`` is True" proves that
    every frame that had arrived by that ``poll`` was returned by :meth:`read` and that the caller
    has finished with it (the caller reads the next frame only when done). That costs one ``poll``
    before each ``recv``.
    """

    def __init__(self, sock: socket.socket, max_bytes: int = MAX_FRAME_BYTES,
                 body_timeout: float | None = FRAME_BODY_TIMEOUT, chunk_bytes: int = 256 * 1024,
                 track_idle: bool = False):
        self.sock = sock
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout
        self.chunk_bytes = chunk_bytes
        self.track_idle = track_idle
        self.idle = False
        self._buffer = bytearray()
        self._chunk = memoryview(bytearray(chunk_bytes))  # recv_into: no allocation (a 256 KB one would be an mmap)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def read(self) -> dict[str, Any] | None:
        """The next frame, parsed; None on a clean end of stream between frames.

        Raises:
            ProtocolError: Bad frame, a frame over ``max_bytes``, a peer stalled or gone inside a frame.
            OSError: The socket failed (reset, shut down by another thread).
        """
        body = self.read_body()
        return None if body is None else decode_body(body)

    def read_body(self) -> bytes | None:
        """The next frame's body bytes (not parsed); None on a clean end of stream between frames."""
        buffer = self._buffer
        deadline: float | None = None
        while True:
            if len(buffer) >= HEADER.size:
                (length,) = HEADER.unpack_from(buffer)
                if length > self.max_bytes:
                    raise ProtocolError(f"frame of {length} bytes exceeds the {self.max_bytes}-byte limit")
                end = HEADER.size + length
                if len(buffer) >= end:
                    body = bytes(memoryview(buffer)[HEADER.size:end])
                    del buffer[:end]
                    return body
            if buffer and self.body_timeout is not None:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.body_timeout
                self.idle = True
                if now >= deadline or not self._poll.poll(max(1, int((deadline - now) * 1000) + 1)):
                    raise ProtocolError(f"peer stalled: frame not complete within {self.body_timeout:g}s")
                self.idle = False
            elif self.track_idle:
                self.idle = True
                self._poll.poll()
                self.idle = False
            received = self.sock.recv_into(self._chunk)
            if not received:
                if not buffer:
                    return None
                where = "header" if len(buffer) < HEADER.size else "body"
                raise ProtocolError(f"connection closed inside a frame {where}")
            buffer += self._chunk[:received]
