"""Runs calls: sync handlers on ``concurrency`` handler threads, async handlers on one event loop thread.

A connection's reader thread hands each ``call`` over here and goes back to reading, so ``ping`` and
``shutdown`` are answered while handlers run (or hang). Sync handlers: the reader hands the call to an
idle one of ``concurrency`` handler threads (waking exactly that one), which runs the handler and writes
the answer frame to the socket itself (no hop back through an event loop, no executor future). Async
handlers: the call is started on the event loop thread, at most ``concurrency`` at once. Calls that
wait for a free handler when SIGTERM arrives never start: they are answered ``ShuttingDown`` at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import os
import threading
from typing import Any, Coroutine

from asya_common.envelope import EnvelopeError, validate

from asya_runtime import frames, jsonlog
from asya_runtime.connection import Connection, SocketLost
from asya_runtime.invoke import Invoker, error_info
from asya_runtime.loader import LoadedHandler

log = logging.getLogger("asya_runtime")
HANDLER_EXIT_CODE = 70  # a handler called sys.exit(): restart this runtime (never mistaken for exit 2/3)
Call = tuple[Connection, Any, Any]  # connection, request id, envelope


def send_quietly(conn: Connection, message: dict[str, Any], timeout: float | None = None) -> None:
    """Sends a frame the runtime composed itself; a lost socket is logged, not raised."""
    try:
        conn.send(frames.frame(message), timeout)
    except (SocketLost, TimeoutError, TypeError, ValueError) as exc:  # ValueError: text that is not strict JSON
        log.warning("could not answer request %r: %s", message.get("id"), exc)


def send_error(conn: Connection, request_id: Any, kind: str, text: str) -> None:
    """An ``error`` frame the runtime decided on (not a handler failure)."""
    send_quietly(conn, {"id": request_id, "type": "error", "error": {"type": kind, "message": text, "traceback": ""}})


class CallRunner:
    """Runs the handler for each submitted call and answers on the call's connection."""

    def __init__(self, handler: LoadedHandler, mode: str, concurrency: int):
        self.invoker = Invoker(handler, mode)
        self.concurrency = concurrency
        self._context = contextvars.copy_context()  # each call runs in a copy (what the handler's import set)
        self._changed = threading.Condition()
        self._running = 0  # calls admitted to a handler thread or the loop (at most ``concurrency``)
        self._waiting: collections.deque[Call] = collections.deque()  # received while all were busy
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks
        self._idle: list[_HandlerThread] = []  # sync handlers: threads waiting for a call (the last idle first)
        if handler.is_async:
            self._event_loop()
        else:
            self._idle = [_HandlerThread(self, index) for index in reversed(range(concurrency))]

    @property
    def in_flight(self) -> int:
        """Calls received and not answered yet (running or waiting for a free handler)."""
        return self._running + len(self._waiting)

    def submit(self, conn: Connection, request_id: Any, envelope: Any) -> None:
        """Starts a call (from a reader thread), or queues it while ``concurrency`` calls run.

        A call admitted here runs even when SIGTERM comes a moment later, before its handler thread
        has picked it up; once :meth:`stop` has run, a new call is answered ``ShuttingDown``.
        """
        call = (conn, request_id, envelope)
        worker = None
        with self._changed:
            refused = self._stopping
            admitted = not refused and self._running < self.concurrency
            if admitted:
                self._running += 1
                if self._idle:
                    worker = self._idle.pop()
            elif not refused:
                self._waiting.append(call)
            if not refused:
                conn.hold()
        if refused:
            send_error(conn, request_id, "ShuttingDown", "runtime is shutting down")
        elif worker is not None:
            worker.hand(call)  # wakes exactly that thread
        elif admitted:
            self._event_loop().call_soon_threadsafe(self._start_async, call)

    def stop(self) -> None:
        """SIGTERM: calls waiting for a free handler are answered ``ShuttingDown``; running ones go on."""
        with self._changed:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        for conn, request_id, _ in waiting:
            try:
                send_error(conn, request_id, "ShuttingDown", "runtime is shutting down")
            finally:
                conn.release()

    def wait_idle(self, timeout: float) -> int:
        """Waits up to ``timeout`` seconds for every running call to be answered; returns how many still run."""
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0, timeout)
            return self._running

    # -- both kinds of handler ------------------------------------------------------------------------

    def _finished(self, conn: Connection, worker: _HandlerThread | None = None) -> Call | None:
        """A call has answered: returns the next waiting call for the same thread or loop slot, if any
        (else the slot is free again, and ``worker`` waits for a call)."""
        conn.release()
        with self._changed:
            if self._waiting:
                return self._waiting.popleft()
            self._running -= 1
            if worker is not None:
                self._idle.append(worker)
            if self._running == 0:
                self._changed.notify_all()
        return None

    def _begin(self, conn: Connection, request_id: Any, envelope: Any) -> bool:
        """Sets the log context of the call and validates its envelope (False: answered with the error)."""
        jsonlog.current_envelope_id.set(envelope.get("id") if isinstance(envelope, dict) else None)
        jsonlog.current_trace.set(jsonlog.trace_of(envelope))
        try:
            validate(envelope)
        except EnvelopeError as exc:
            send_quietly(conn, {"id": request_id, "type": "error", "error": error_info(exc)})
            return False
        return True

    def _fly_sender(self, conn: Connection, request_id: Any):
        def send_fly(data: Any) -> None:
            conn.send(frames.fly_frame(request_id, data))
        return send_fly

    def _answer(self, conn: Connection, request_id: Any, outputs: list[dict[str, Any]]) -> None:
        conn.send(frames.result_frame(request_id, outputs))
        log.debug("call done", extra={"outputs": len(outputs)})

    def _failed(self, conn: Connection, request_id: Any, exc: BaseException) -> None:
        """Answers a call whose handler raised (``sys.exit`` also ends the process for a restart)."""
        if isinstance(exc, SocketLost):
            log.warning("connection lost before the result was sent: %s", exc)
            return
        if isinstance(exc, SystemExit):
            self._exited(conn, request_id, exc)
        if isinstance(exc, asyncio.CancelledError):  # nothing here cancels calls: the handler raised it itself
            exc = asyncio.CancelledError("handler raised CancelledError")
        info = error_info(exc)
        log.error("handler raised %s: %s", info["type"], exc, extra={"error_type": info["type"],
                                                                   "traceback": info["traceback"]})
        send_quietly(conn, {"id": request_id, "type": "error", "error": info})

    def _exited(self, conn: Connection, request_id: Any, exc: SystemExit) -> None:
        """Reports ``sys.exit(n)`` as this call's error, then exits for a restart (never exit code n)."""
        info = error_info(exc)
        info["message"] = (f"handler called sys.exit({exc.code!r}); the runtime restarts "
                           f"(exit {HANDLER_EXIT_CODE})")
        log.error(info["message"])
        send_quietly(conn, {"id": request_id, "type": "error", "error": info}, timeout=2.0)
        jsonlog.flush()
        os._exit(HANDLER_EXIT_CODE)

    # -- sync handlers: handler threads ---------------------------------------------------------------

    def _run_sync(self, call: Call) -> None:
        """Runs one call on a handler thread (in its own copy of the context: the log fields are the call's)."""
        conn, request_id, envelope = call
        if self._begin(conn, request_id, envelope):
            try:
                outputs = self.invoker.invoke_sync(envelope, self._fly_sender(conn, request_id), self._on_loop)
                self._answer(conn, request_id, outputs)
            except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an error frame
                self._failed(conn, request_id, exc)

    def _on_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Runs a coroutine a sync handler returned on the event loop; waits for it (in the handler thread)."""
        asyncio.run_coroutine_threadsafe(coroutine, self._event_loop()).result()

    # -- async handlers: the event loop thread --------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="asya-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def _start_async(self, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self._run_async(call), context=self._context.copy())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_async(self, call: Call) -> None:
        conn, request_id, envelope = call
        try:
            if self._begin(conn, request_id, envelope):
                try:
                    outputs = await self.invoker.invoke_async(envelope, self._fly_sender(conn, request_id))
                    self._answer(conn, request_id, outputs)
                except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an error frame
                    self._failed(conn, request_id, exc)
        finally:
            following = self._finished(conn)
            if following is not None:
                self._start_async(following)


class _HandlerThread:
    """One handler thread for sync handlers. It waits on its own lock, so handing it a call wakes exactly
    this thread (several threads waiting on one queue cost several futex calls per call); when it is
    done it takes the next waiting call itself, without a hand-over."""

    def __init__(self, runner: CallRunner, index: int):
        self.runner = runner
        self.call: Call | None = None
        self.wake = threading.Lock()
        self.wake.acquire()
        threading.Thread(target=self._serve, name=f"asya-handler_{index}", daemon=True).start()

    def hand(self, call: Call) -> None:
        """Gives this idle thread a call to run."""
        self.call = call
        self.wake.release()

    def _serve(self) -> None:
        runner = self.runner
        while True:
            self.wake.acquire()
            call, self.call = self.call, None
            while call is not None:
                try:
                    runner._context.copy().run(runner._run_sync, call)
                except BaseException:  # noqa: BLE001 - a handler thread must outlive any one call
                    log.exception("a call failed inside the runtime")
                call = runner._finished(call[0], self)
