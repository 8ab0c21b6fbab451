"""Client side of the sidecar <-> runtime protocol: one persistent, multiplexed Unix-socket connection.

Several calls may be in flight on the connection at once (``ASYA_CONCURRENCY``); ``fly`` frames are
handed to a per-call callback as they arrive (``asya_sidecar.runtime_wire`` parses the frames). When
the connection drops the client reconnects on the next call, waiting for the runtime (restarted by
kubelet or by ``asya dev``) to come back.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Callable

from asya_common import protocol
from asya_sidecar.runtime_wire import RuntimeWire

FlyCallback = Callable[[Any], None]  # runs inside the frame parser: must not block or await


class RuntimeUnavailable(RuntimeError):
    """The runtime socket did not accept connections within the connect timeout."""


class RuntimeCrashed(RuntimeError):
    """The connection to the runtime was lost while a call was in flight."""


class RuntimeRestarted(RuntimeError):
    """The call is not the handler's failure: the sidecar restarted the runtime (another call timed out), the
    runtime announced SIGTERM and closed without answering, or the call never reached it. Returned to the
    queue without an attempt counted."""


class RuntimeClient:
    """Talks to the runtime at ``socket_path``.

    Args:
        socket_path: The runtime's Unix socket.
        connect_timeout: Seconds to keep retrying a connection before :class:`RuntimeUnavailable`.
    """

    def __init__(self, socket_path: str, connect_timeout: float):
        self._socket_path = socket_path
        self._connect_timeout = connect_timeout
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future, FlyCallback | None]] = {}
        self._wire: RuntimeWire | None = None
        self._connect_lock = asyncio.Lock()
        self._generation = 0
        self._generations = itertools.count(1)
        self._restarting_generation = -1
        self._stopping_generation = -1  # the runtime of that connection announced SIGTERM
        self.handler: str | None = None
        self.runtime_concurrency: int | None = None  # calls the runtime runs at once (from its pong)
        self._instance: str | None = None  # the connected runtime process (from its pong)
        self._retired: str | None = None  # the instance last asked to exit (restart): never connected to again
        self.restarts = 0

    @property
    def connected(self) -> bool:
        """True while a connection to the runtime is open."""
        return self._wire is not None and not self._wire.closing

    @property
    def generation(self) -> int:
        """Increases on every new connection; lets callers restart a runtime at most once per timeout."""
        return self._generation

    async def connect(self) -> None:
        """Connects (waiting for the socket) unless already connected; done when the runtime answers a ping.

        A runtime this client asked to exit (see :meth:`restart`) may still accept a connection, or answer
        a ping, for a moment before it is gone: such a connection is closed and the client waits for the
        new process.

        Raises:
            RuntimeUnavailable: No runtime answered within the connect timeout.
        """
        if self.connected and self._stopping_generation != self._generation:
            return  # the common case: no lock, no await
        async with self._connect_lock:
            if self.connected and self._stopping_generation == self._generation:
                # the runtime is draining: wait for it to close, then for its successor (never a new call to it)
                await asyncio.wait({self._wire.lost}, timeout=self._connect_timeout)
            if self.connected:
                return
            deadline = time.monotonic() + self._connect_timeout
            last_error: Exception | str | None = None
            while time.monotonic() < deadline:
                try:
                    wire, generation, pong = await self._open_and_ping(deadline)
                except (OSError, TimeoutError, RuntimeRestarted) as exc:  # gone again before it answered
                    last_error = exc
                else:
                    if wire.closing:
                        last_error = wire.lost.result() if wire.lost.done() else "connection closed"
                    elif pong.get("instance") is None or pong.get("instance") != self._retired:
                        self._wire, self._generation = wire, generation  # calls may use it from here on
                        self._instance = pong.get("instance")
                        self.handler = pong.get("handler")
                        self.runtime_concurrency = pong.get("concurrency")  # None: a runtime that does not say
                        return
                    else:
                        last_error = "only the runtime that is being restarted answered"
                        wire.close()
                await asyncio.sleep(0.05)
            raise RuntimeUnavailable(
                f"runtime socket {self._socket_path} not reachable after {self._connect_timeout:.0f}s: {last_error}")

    async def _open_and_ping(self, deadline: float) -> tuple[RuntimeWire, int, dict[str, Any]]:
        """A new connection and the runtime's pong; the connection is not used for calls until it is kept."""
        generation = next(self._generations)  # unique per connection: a late loss of another one never matches
        _, wire = await asyncio.get_running_loop().create_unix_connection(
            lambda: RuntimeWire(self._on_frame, lambda reason: self._drop(generation, reason)), self._socket_path)
        ping_id = str(next(self._ids))
        pong = self._send(protocol.encode_frame({"id": ping_id, "op": "ping"}), ping_id, None, wire)
        await asyncio.wait({pong, wire.lost}, timeout=max(0.1, deadline - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
        if not pong.done():
            pong.cancel()
            wire.close()
            raise ConnectionResetError(wire.lost.result() if wire.lost.done() else "the runtime did not answer a ping")
        return wire, generation, pong.result()

    def start_call(self, envelope: dict[str, Any], on_fly: FlyCallback | None = None,
                   body: bytes | None = None) -> asyncio.Future:
        """Sends one envelope on the open connection without waiting (call :meth:`connect` first).

        The runtime runs calls in the order they arrive, at most ``concurrency`` at once; later ones wait
        in the runtime for a free handler.

        Args:
            envelope: The parsed envelope.
            on_fly: Called with each ``fly`` chunk's data (must not block).
            body: The envelope's JSON exactly as received, when ``envelope`` has not been changed since it
                was parsed: it goes into the call frame as is, instead of being serialised again.

        Returns:
            A future of the final frame (``type`` is ``result`` or ``error``); it fails with
            :class:`RuntimeCrashed` or :class:`RuntimeRestarted` when the connection ends first.

        Raises:
            RuntimeRestarted: Not connected: the call was not sent.
        """
        request_id = str(next(self._ids))
        if body is None:
            frame = protocol.encode_frame({"id": request_id, "op": "call", "envelope": envelope})
        else:
            frame = protocol.call_frame(request_id, body)
        return self._send(frame, request_id, on_fly)

    def _send(self, frame: bytes, request_id: str, on_fly: FlyCallback | None,
              wire: RuntimeWire | None = None) -> asyncio.Future:
        wire = wire or self._wire
        if wire is None:
            raise RuntimeRestarted("runtime connection is closed; the call was not sent")
        try:
            wire.send(frame)
        except (OSError, RuntimeError) as exc:  # the runtime never received it: no attempt counted
            raise RuntimeRestarted(f"cannot write to runtime: {exc}") from exc
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, on_fly)
        future.add_done_callback(lambda _: self._pending.pop(request_id, None))  # answered, failed or abandoned
        return future

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "stopping":  # SIGTERM reached the runtime: what it leaves unanswered
            self._stopping_generation = self._generation  # never ran to completion; returned, no attempt
            return
        entry = self._pending.get(str(frame.get("id")))
        if entry is None:
            return
        future, on_fly = entry
        if kind == "fly":
            if on_fly is not None:
                on_fly(frame.get("data"))
        elif not future.done():
            future.set_result(frame)

    def _drop(self, generation: int, reason: str) -> None:
        if generation != self._generation:
            return
        if self._wire is not None:
            self._wire.close()
        self._wire = None
        error_type = (RuntimeRestarted if generation in (self._restarting_generation, self._stopping_generation)
                      else RuntimeCrashed)
        for future, _ in list(self._pending.values()):
            if not future.done():
                future.set_exception(error_type(reason))

    async def restart(self, generation: int) -> bool:
        """Asks the runtime of connection ``generation`` to exit so it is restarted fresh.

        In-flight calls on that connection fail with :class:`RuntimeRestarted`. Returns False when
        that connection is already gone (someone else restarted it).
        """
        async with self._connect_lock:  # no other call connects to the runtime that is going away
            if generation != self._generation or not self.connected:
                return False
            self._restarting_generation = generation
            self._retired = self._instance
            self.restarts += 1
            wire = self._wire
            try:
                wire.send(protocol.encode_frame({"id": "restart", "op": "shutdown"}))
            except (OSError, RuntimeError):
                pass
            self._drop(generation, "runtime restarted by the sidecar")
            # Wait for the connection to be closed, so the next connect reaches the new process.
            await asyncio.wait({wire.lost}, timeout=10)
        return True

    async def close(self) -> None:
        """Closes the connection without stopping the runtime."""
        if self._wire is not None:
            self._wire.close()
        self._wire = None
