"""The Unix-socket server: frames in (``call``, ``ping``, ``shutdown``), frames out, bounded concurrency.

One asyncio server; each connection is persistent and may carry several calls in flight, answered
in any order by request ``id`` (see ``asya_common.protocol``). ``shutdown`` replies and then leaves the
process at once with exit code 75, even when a sync handler thread is stuck. SIGTERM stops accepting
calls, lets in-flight ones finish (up to the grace period) and exits 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any, AsyncIterator

from asya_common import protocol, strictjson
from asya_common.envelope import EnvelopeError, validate

from asya_runtime import jsonlog
from asya_runtime.config import SHUTDOWN_GRACE_SECONDS, RuntimeSettings
from asya_runtime.invoke import Invoker, ResultError, error_info
from asya_runtime.loader import LoadedHandler
from asya_runtime.socketfile import serve_private

log = logging.getLogger("asya_runtime")
HANDLER_EXIT_CODE = 70  # a handler called sys.exit(): restart this runtime (never mistaken for exit 2/3)


class _SocketLost(Exception):
    """The sidecar's socket went away during a call (told apart from a ConnectionError the handler raised)."""


async def _send_frame(conn: Connection, frame: dict[str, Any]) -> None:
    try:
        await conn.send(frame)
    except ConnectionError as exc:
        raise _SocketLost() from exc


def _check_result(value: Any, what: str, max_depth: int) -> None:
    """Raises ResultError when ``value`` is not strict JSON (NaN, Infinity, a lone surrogate, too deep)."""
    try:
        strictjson.check(value, what, max_depth)
    except strictjson.NotStrictJSON as exc:
        raise ResultError(f"{exc.reason}; the result must be strict JSON") from None


class Connection:
    """One sidecar connection: serialises writes of whole frames."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task] = set()

    async def send(self, message: dict[str, Any]) -> None:
        """Encodes and writes one frame (raises ResultError when the message is not JSON-serialisable)."""
        try:
            frame = protocol.encode_frame(message)
        except (TypeError, ValueError, RecursionError, protocol.ProtocolError) as exc:
            raise ResultError(f"handler result is not JSON-serialisable: {exc}") from None
        async with self.lock:
            self.writer.write(frame)
            await self.writer.drain()


class RuntimeServer:
    """Serves one loaded handler on ``settings.socket_path``."""

    def __init__(self, settings: RuntimeSettings, handler: LoadedHandler):
        self.settings = settings
        self.handler = handler
        self.executor = concurrent.futures.ThreadPoolExecutor(settings.concurrency, thread_name_prefix="asya-handler")
        self.invoker = Invoker(handler, settings.handler_mode, self.executor)
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.calls: set[asyncio.Task] = set()
        self.stopping = asyncio.Event()
        self.connections: dict[asyncio.Task, asyncio.StreamWriter] = {}  # closed on stop: no cancelled readers

    async def serve(self) -> int:
        """Runs until SIGTERM/SIGINT; returns the process exit code."""
        path = Path(self.settings.socket_path)
        server, warning = await serve_private(path, self._on_connection, limit=2**20)
        if warning:
            log.warning(warning)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        log.info("runtime ready", extra={"socket": str(path), "mode": self.settings.handler_mode,
                                          "concurrency": self.settings.concurrency, "pid": os.getpid()})
        await self.stopping.wait()
        server.close()
        self._announce_stopping()
        log.info("stopping: no new calls accepted", extra={"in_flight": len(self.calls)})
        abandoned = 0
        if self.calls:
            _, still_running = await asyncio.wait(set(self.calls), timeout=SHUTDOWN_GRACE_SECONDS)
            abandoned = len(still_running)
        try:
            path.unlink()
        except OSError:
            pass
        if abandoned:
            log.warning("grace period over: abandoning calls still running", extra={"abandoned": abandoned})
            jsonlog.flush()
            os._exit(0)  # stuck worker threads cannot be joined
        await self._close_connections()
        log.info("stopped")
        self.executor.shutdown(wait=False, cancel_futures=True)
        return 0

    def _announce_stopping(self) -> None:
        """Tells every sidecar that this runtime stops: calls it has not answered when the connection
        closes were never run to completion and go back to the queue without an attempt counted."""
        frame = protocol.encode_frame({"id": None, "type": "stopping"})
        for writer in list(self.connections.values()):
            try:
                writer.write(frame)  # one write call: never interleaves with another frame
            except (ConnectionError, RuntimeError):
                pass

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[bool]:
        """A concurrency slot, or False at once when SIGTERM arrives first (the call must not start)."""
        if self.stopping.is_set():
            yield False
            return
        if not self.slots.locked():
            await self.slots.acquire()
        else:
            acquire = asyncio.ensure_future(self.slots.acquire())
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if not acquire.done():
                acquire.cancel()
                try:
                    await acquire
                except asyncio.CancelledError:
                    yield False
                    return
        if self.stopping.is_set():
            self.slots.release()
            yield False
            return
        try:
            yield True
        finally:
            self.slots.release()

    async def _close_connections(self) -> None:
        """Closes idle sidecar connections so their readers end normally (a clean stop logs no traceback)."""
        for writer in list(self.connections.values()):
            writer.close()
        if self.connections:
            await asyncio.wait(set(self.connections), timeout=2.0)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(writer)
        self.connections[asyncio.current_task()] = writer
        try:
            while True:
                try:
                    message = await protocol.read_frame(
                        reader, self.settings.max_message_bytes + protocol.FRAME_OVERHEAD_BYTES,
                        self.settings.frame_timeout)
                except protocol.ProtocolError as exc:
                    log.error("closing connection: %s", exc)
                    break
                except ConnectionError:
                    break
                if message is None:
                    break
                await self._dispatch(conn, message)
            if conn.tasks:  # the peer may have half-closed: still deliver what is in flight
                await asyncio.wait(set(conn.tasks))
        finally:
            self.connections.pop(asyncio.current_task(), None)
            writer.close()

    async def _dispatch(self, conn: Connection, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        op = message.get("op")
        if op == "call":
            if self.stopping.is_set():
                self._spawn(conn, self._reply_error(conn, request_id, "ShuttingDown", "runtime is shutting down"))
                return
            task = self._spawn(conn, self._call(conn, request_id, message.get("envelope")))
            self.calls.add(task)
            task.add_done_callback(self.calls.discard)
        elif op == "ping":
            self._spawn(conn, self._send(conn, {"id": request_id, "type": "pong",
                                                "handler": self.handler.name, "pid": os.getpid()}))
        elif op == "shutdown":
            log.warning("shutdown requested by the sidecar: exiting for a restart",
                        extra={"exit_code": protocol.RESTART_EXIT_CODE, "in_flight": len(self.calls)})
            try:
                await asyncio.wait_for(conn.send({"id": request_id, "type": "shutdown", "pid": os.getpid()}), 2.0)
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
            jsonlog.flush()
            os._exit(protocol.RESTART_EXIT_CODE)
        else:
            self._spawn(conn, self._reply_error(conn, request_id, "ProtocolError",
                                                f"unknown op {op!r} (expected 'call', 'ping' or 'shutdown')"))

    def _spawn(self, conn: Connection, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)
        return task

    async def _send(self, conn: Connection, message: dict[str, Any]) -> None:
        try:
            await conn.send(message)
        except (ConnectionError, RuntimeError) as exc:
            log.warning("could not answer request %r: %s", message.get("id"), exc)

    async def _reply_error(self, conn: Connection, request_id: Any, kind: str, text: str) -> None:
        await self._send(conn, {"id": request_id, "type": "error",
                                "error": {"type": kind, "message": text, "traceback": ""}})

    async def _handler_failed(self, conn: Connection, request_id: Any, exc: BaseException) -> None:
        info = error_info(exc)
        log.error("handler raised %s: %s", info["type"], exc, extra={"error_type": info["type"],
                                                                   "traceback": info["traceback"]})
        await self._send(conn, {"id": request_id, "type": "error", "error": info})

    async def _handler_exited(self, conn: Connection, request_id: Any, exc: SystemExit) -> None:
        """Reports ``sys.exit(n)`` as this call's error, then exits for a restart (never exit code n)."""
        info = error_info(exc)
        info["message"] = (f"handler called sys.exit({exc.code!r}); the runtime restarts "
                           f"(exit {HANDLER_EXIT_CODE})")
        log.error(info["message"])
        try:
            await asyncio.wait_for(self._send(conn, {"id": request_id, "type": "error", "error": info}), 2.0)
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
        jsonlog.flush()
        os._exit(HANDLER_EXIT_CODE)

    async def _call(self, conn: Connection, request_id: Any, envelope: Any) -> None:
        token = jsonlog.current_envelope_id.set(envelope.get("id") if isinstance(envelope, dict) else None)
        trace_token = jsonlog.current_trace.set(jsonlog.trace_of(envelope))
        try:
            async with self._slot() as started:
                if not started:  # SIGTERM came while it waited for a slot: it never ran, the sidecar returns it
                    await self._reply_error(conn, request_id, "ShuttingDown", "runtime is shutting down")
                    return
                try:
                    validate(envelope)
                except EnvelopeError as exc:
                    await self._send(conn, {"id": request_id, "type": "error", "error": error_info(exc)})
                    return

                async def send_fly(data: Any) -> None:
                    _check_result(data, "FLY data", strictjson.MAX_DEPTH)
                    await _send_frame(conn, {"id": request_id, "type": "fly", "data": data})

                try:
                    outputs = await self.invoker.invoke(envelope, send_fly)
                    _check_result(outputs, "handler result", strictjson.MAX_DEPTH + 1)
                    await _send_frame(conn, {"id": request_id, "type": "result", "outputs": outputs})
                    log.debug("call done", extra={"outputs": len(outputs)})
                except _SocketLost as exc:
                    raise exc.__cause__ from None
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():
                        raise  # really cancelled (shutdown); otherwise the handler raised it itself
                    await self._handler_failed(conn, request_id, asyncio.CancelledError("handler raised CancelledError"))
                except SystemExit as exc:  # sys.exit() in a handler: a crash of this call, then a restart
                    await self._handler_exited(conn, request_id, exc)
                except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an error frame
                    await self._handler_failed(conn, request_id, exc)
        except ConnectionError as exc:
            log.warning("connection lost before the result was sent: %s", exc)
        finally:
            jsonlog.current_envelope_id.reset(token)
            jsonlog.current_trace.reset(trace_token)
