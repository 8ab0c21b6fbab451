"""The sidecar's end of the runtime socket as an ``asyncio.Protocol``: frames parsed as bytes arrive.

A hop makes one call frame and reads one answer frame, so this path runs once per message per
direction. Stream readers cost three ``readexactly`` awaits and a timeout context per frame; here a
chunk that holds a whole frame (the usual case) is decoded straight from the bytes the loop hands
over, with no copy into a buffer and no timer. A partial frame starts one timer: a runtime that
stalls inside a frame for ``body_timeout`` seconds is cut off, as before.

The frame format is ``asya_common.protocol``'s (4-byte big-endian length, then strict JSON).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from asya_common import protocol

_HEADER_SIZE = protocol.HEADER.size


class RuntimeWire(asyncio.Protocol):
    """Parses frames from the runtime and hands each to ``on_frame``; reports the end to ``on_lost``.

    Args:
        on_frame: Called with every decoded frame, in order.
        on_lost: Called once with a reason when the connection ends (cleanly or not).
        max_bytes: Largest frame accepted.
        body_timeout: Seconds a started frame may take to complete.
    """

    def __init__(self, on_frame: Callable[[dict[str, Any]], None], on_lost: Callable[[str], None],
                 max_bytes: int = protocol.MAX_FRAME_BYTES, body_timeout: float = protocol.FRAME_BODY_TIMEOUT):
        self._on_frame, self._on_lost = on_frame, on_lost
        self._max_bytes, self._body_timeout = max_bytes, body_timeout
        self._buffer = bytearray()
        self._stall_timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []  # frames queued in this turn of the loop (see send)
        self._lost_reason: str | None = None
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()  # done when the connection ends

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            if not self._buffer and self._whole_frame(data):
                return
            self._buffer += data
            self._drain_buffer()
        except protocol.ProtocolError as exc:
            self._fail(f"runtime connection failed: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        reason = self._lost_reason or (f"runtime connection failed: {exc}" if exc
                                       else "runtime closed the connection")
        if self._buffer and self._lost_reason is None:
            reason = "runtime connection failed: connection closed inside a frame"
        self._lost_reason = reason
        if not self.lost.done():
            self.lost.set_result(reason)
        self._on_lost(reason)

    # -- writing --------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queues one whole frame without waiting (frames never interleave). Frames queued in the same turn
        of the event loop leave in one ``send``: a burst of calls becomes one system call and one wake-up of
        the runtime instead of one per message. There is no waiting for the socket buffer: at most the
        messages the sidecar holds (``ASYA_PREFETCH``) are ever in it.

        Raises:
            ConnectionError: The connection is closed.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("runtime connection is closed")
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(frame)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def close(self) -> None:
        """Closes the connection after the frames already queued (``on_lost`` follows from the loop)."""
        if self._outgoing:
            self._flush()
        if self._transport is not None:
            self._transport.close()

    @property
    def closing(self) -> bool:
        """True once the connection is closed or closing."""
        return self._transport is None or self._transport.is_closing()

    # -- parsing --------------------------------------------------------------------------------

    def _whole_frame(self, data: bytes) -> bool:
        """The fast path: ``data`` is exactly one frame. Returns False to take the buffered path."""
        if len(data) < _HEADER_SIZE:
            return False
        length = int.from_bytes(data[:_HEADER_SIZE], "big")
        if len(data) != _HEADER_SIZE + length or length > self._max_bytes:
            return False
        self._on_frame(protocol.decode_body(data[_HEADER_SIZE:]))
        return True

    def _drain_buffer(self) -> None:
        buffer, completed = self._buffer, False
        while len(buffer) >= _HEADER_SIZE:
            length = int.from_bytes(buffer[:_HEADER_SIZE], "big")
            if length > self._max_bytes:
                raise protocol.ProtocolError(f"frame of {length} bytes exceeds the {self._max_bytes}-byte limit")
            end = _HEADER_SIZE + length
            if len(buffer) < end:
                break
            body = bytes(buffer[_HEADER_SIZE:end])
            del buffer[:end]
            completed = True
            self._on_frame(protocol.decode_body(body))
        if completed:  # the deadline is per frame: a new partial frame gets the whole timeout
            self._cancel_stall_timer()
        if buffer:
            if self._stall_timer is None:
                self._stall_timer = asyncio.get_running_loop().call_later(self._body_timeout, self._stalled)
        else:
            self._cancel_stall_timer()

    def _stalled(self) -> None:
        self._stall_timer = None
        if self._buffer:
            self._fail(f"runtime connection failed: peer stalled: frame not complete within {self._body_timeout:g}s")

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _fail(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
        self._buffer.clear()
        if self._transport is not None:
            self._transport.abort()
