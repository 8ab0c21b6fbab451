"""A minimal sidecar-side client of the runtime protocol, plus a helper that runs a runtime process.

Tests only (the real client lives in the sidecar). ``RuntimeTestClient`` keeps one connection, lets
several calls be in flight and routes answers by request ``id``; ``RuntimeProcess`` starts
``python -m asya_runtime`` with the given env and waits until it answers ``ping``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asya_common import protocol

HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
REPO = Path(__file__).resolve().parents[3]
RUNTIME_SRC = REPO / "images" / "runtime"
COMMON_SRC = REPO / "python" / "asya_common"


class RuntimeTestClient:
    """One persistent connection; ``call`` returns ``(fly_data_list, final_frame)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.ids = itertools.count(1)
        self.pending: dict[str, asyncio.Queue] = {}
        self.pump = asyncio.ensure_future(self._pump())

    @classmethod
    async def connect(cls, socket_path: str | Path) -> "RuntimeTestClient":
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**20)
        return cls(reader, writer)

    async def _pump(self) -> None:
        while True:
            frame = await protocol.read_frame(self.reader)
            if frame is None:
                for queue in self.pending.values():
                    queue.put_nowait(None)
                return
            queue = self.pending.get(str(frame.get("id")))
            if queue is not None:  # unsolicited frames (the runtime's "stopping" notice) have no request
                queue.put_nowait(frame)

    async def request(self, message: dict[str, Any]) -> asyncio.Queue:
        """Sends ``message`` with a fresh id; returns the queue its answers arrive on."""
        request_id = str(next(self.ids))
        queue: asyncio.Queue = asyncio.Queue()
        self.pending[request_id] = queue
        await protocol.write_frame(self.writer, {**message, "id": request_id})
        return queue

    async def call(self, envelope: dict[str, Any], timeout: float = 30) -> tuple[list[Any], dict[str, Any]]:
        """Sends a ``call`` and collects its ``fly`` data and its final ``result``/``error`` frame."""
        queue = await self.request({"op": "call", "envelope": envelope})
        flies: list[Any] = []
        while True:
            frame = await asyncio.wait_for(queue.get(), timeout)
            if frame is None:
                raise ConnectionError("runtime closed the connection")
            if frame["type"] == "fly":
                flies.append(frame["data"])
            else:
                return flies, frame

    async def ping(self, timeout: float = 10) -> dict[str, Any]:
        queue = await self.request({"op": "ping"})
        return await asyncio.wait_for(queue.get(), timeout)

    async def close(self) -> None:
        self.pump.cancel()
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class RuntimeProcess:
    """``python -m asya_runtime`` in a subprocess, with stdout/stderr captured to files."""

    def __init__(self, tmp_path: Path, handler: str, python_args: tuple[str, ...] = (), **env: str):
        self.socket_path = tmp_path / "run" / "asya-runtime.sock"
        self.stderr_path = tmp_path / "runtime.stderr"
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join([str(HANDLERS_DIR), str(RUNTIME_SRC), str(COMMON_SRC)]),
            "ASYA_HANDLER": handler,
            "ASYA_SOCKET_PATH": str(self.socket_path),
            "ASYA_ACTOR_NAME": "test-actor",
            **env,
        }
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, *python_args, "-m", "asya_runtime"],
                env=full_env, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=stderr,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    async def wait_ready(self, timeout: float = 15) -> None:
        """Waits until the socket answers ``ping`` (or raises with the runtime's stderr)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtime exited with {self.proc.returncode}: {self.stderr}")
            if self.socket_path.exists():
                try:
                    client = await RuntimeTestClient.connect(self.socket_path)
                except OSError:
                    pass
                else:
                    try:
                        await client.ping()
                        return
                    finally:
                        await client.close()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"runtime not ready after {timeout}s: {self.stderr}")

    async def wait_exit(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"runtime still running after {timeout}s")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def run_startup(tmp_path: Path, handler: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess:
    """Runs a runtime that is expected to fail at start-up; returns the finished process."""
    process = RuntimeProcess(tmp_path, handler, **env)
    try:
        process.proc.wait(timeout)
    finally:
        process.stop()
    return subprocess.CompletedProcess(process.proc.args, process.proc.returncode, "", process.stderr)


def envelope(payload: Any, *, curr: str = "test-actor", nxt: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A small input envelope for ``curr`` with ``payload``."""
    return {
        "id": "env-1",
        "route": {"prev": ["earlier"], "curr": curr, "next": list(nxt if nxt is not None else ["later"])},
        "headers": {"trace": "t-1"},
        "payload": payload,
        **extra,
    }
