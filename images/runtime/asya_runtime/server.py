"""The Unix-socket server: frames in (``call``, ``ping``, ``shutdown``), frames out, bounded concurrency.

A plain threaded server on blocking sockets (no asyncio on the hot path: the hop through an event loop
and an executor future cost more CPU than a no-op handler call itself). The main thread accepts
connections and waits for signals; each connection has a reader thread that parses frames and answers
``ping`` and ``shutdown`` itself, while calls run on ``asya_runtime.calls`` (handler threads, or an
event loop thread for async handlers), which write their own answers. A connection is persistent and
may carry several calls in flight, answered in any order by request ``id`` (see
``asya_common.protocol``). ``shutdown`` replies and then leaves the process at once with exit code 75,
even when a sync handler thread is stuck. SIGTERM stops accepting calls (a call that had reached the
socket before the signal still runs), lets in-flight ones finish (up to the grace period) and exits 0.
"""

from __future__ import annotations

import logging
import os
import select
import selectors
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from asya_common import protocol

from asya_runtime import jsonlog
from asya_runtime.calls import HANDLER_EXIT_CODE, CallRunner, send_error, send_quietly
from asya_runtime.config import SHUTDOWN_GRACE_SECONDS, RuntimeSettings
from asya_runtime.connection import Connection
from asya_runtime.loader import LoadedHandler
from asya_runtime.socketfile import listen_private

__all__ = ["HANDLER_EXIT_CODE", "SHUTDOWN_GRACE_SECONDS", "RuntimeServer"]
log = logging.getLogger("asya_runtime")


class RuntimeServer:
    """Serves one loaded handler on ``settings.socket_path``."""

    def __init__(self, settings: RuntimeSettings, handler: LoadedHandler):
        self.settings = settings
        self.handler = handler
        self.calls = CallRunner(handler, settings.handler_mode, settings.concurrency)
        self.instance = os.urandom(8).hex()  # tells this process from its successor (pids repeat in containers)
        self.stopping = False
        self.connections: dict[Connection, tuple[threading.Thread, protocol.FrameReader]] = {}
        self._signalled = False

    def serve(self) -> int:
        """Runs until SIGTERM/SIGINT; returns the process exit code (call from the main thread).

        Raises:
            OSError: The socket cannot be created on ``settings.socket_path``.
        """
        path = Path(self.settings.socket_path)
        listener, warning = listen_private(path)
        if warning:
            log.warning(warning)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)  # a signal makes the selector below return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        log.info("runtime ready", extra={"socket": str(path), "mode": self.settings.handler_mode,
                                          "concurrency": self.settings.concurrency, "pid": os.getpid()})
        listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake_read, selectors.EVENT_READ)
            while not self._signalled:
                for key, _ in selector.select():
                    if key.fileobj is listener:
                        self._accept(listener)
                    else:
                        _drain(wake_read)
        return self._stop(path, listener)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signalled = True

    def _stop(self, path: Path, listener: socket.socket) -> int:
        self._catch_up()
        self.stopping = True  # from here on a call is answered ShuttingDown
        listener.close()
        self._announce_stopping()
        log.info("stopping: no new calls accepted", extra={"in_flight": self.calls.in_flight})
        self.calls.stop()
        abandoned = self.calls.wait_idle(SHUTDOWN_GRACE_SECONDS)
        try:
            path.unlink()
        except OSError:
            pass
        if abandoned:
            log.warning("grace period over: abandoning calls still running", extra={"abandoned": abandoned})
            jsonlog.flush()
            os._exit(0)  # stuck handler threads cannot be joined
        self._close_connections()
        log.info("stopped")
        return 0

    def _catch_up(self, timeout: float = 2.0) -> None:
        """Lets every reader dispatch the frames that arrived before the signal (a call sent before
        SIGTERM runs; one sent after it is answered ``ShuttingDown``), up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for conn, (reader, frames) in list(self.connections.items()):
            probe = select.poll()
            try:
                probe.register(conn.sock, select.POLLIN)
            except (OSError, ValueError):  # closed meanwhile: its reader is done
                continue
            while time.monotonic() < deadline and reader.is_alive():
                try:
                    pending = probe.poll(0)  # first the socket, then the reader: see FrameReader.idle
                except (OSError, ValueError):
                    break
                if frames.idle and not any(events & select.POLLIN for _, events in pending):
                    break
                time.sleep(0.001)

    def _announce_stopping(self) -> None:
        """Tells every sidecar that this runtime stops: calls it has not answered when the connection
        closes were never run to completion and go back to the queue without an attempt counted."""
        frame = protocol.encode_frame({"id": None, "type": "stopping"})
        for conn in list(self.connections):
            try:
                conn.send(frame, timeout=1.0)  # a whole frame under the write lock: never interleaved
            except Exception:  # noqa: BLE001 - a peer that is gone or stuck misses the notice
                pass

    def _close_connections(self) -> None:
        """Ends idle sidecar connections so their readers stop normally (a clean stop logs no traceback)."""
        readers = list(self.connections.items())
        for conn, _ in readers:
            conn.shut_down()
        for _, (reader, _) in readers:
            reader.join(2.0)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(True)
        conn = Connection(sock)
        frames = protocol.FrameReader(sock, self.settings.max_message_bytes + protocol.FRAME_OVERHEAD_BYTES,
                                      self.settings.frame_timeout, track_idle=True)
        reader = threading.Thread(target=self._read, args=(conn, frames), name="asya-connection", daemon=True)
        self.connections[conn] = (reader, frames)
        reader.start()

    def _read(self, conn: Connection, frames: protocol.FrameReader) -> None:
        """A connection's reader thread: parses frames and dispatches them until the stream ends."""
        try:
            while True:
                try:
                    message = frames.read()
                except protocol.ProtocolError as exc:
                    log.error("closing connection: %s", exc)
                    break
                except OSError:
                    break
                if message is None:
                    break
                self._dispatch(conn, message)
        finally:
            self.connections.pop(conn, None)
            conn.release()  # closed now, or when its last call has answered

    def _dispatch(self, conn: Connection, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        op = message.get("op")
        if op == "call":
            if self.stopping:
                send_error(conn, request_id, "ShuttingDown", "runtime is shutting down")
            else:
                self.calls.submit(conn, request_id, message.get("envelope"))
        elif op == "ping":
            send_quietly(conn, {"id": request_id, "type": "pong", "handler": self.handler.name, "pid": os.getpid(),
                               "instance": self.instance, "concurrency": self.calls.concurrency})
        elif op == "shutdown":
            log.warning("shutdown requested by the sidecar: exiting for a restart",
                        extra={"exit_code": protocol.RESTART_EXIT_CODE, "in_flight": self.calls.in_flight})
            send_quietly(conn, {"id": request_id, "type": "shutdown", "pid": os.getpid()}, timeout=2.0)
            jsonlog.flush()
            os._exit(protocol.RESTART_EXIT_CODE)
        else:
            send_error(conn, request_id, "ProtocolError",
                       f"unknown op {op!r} (expected 'call', 'ping' or 'shutdown')")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass
