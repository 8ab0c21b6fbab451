"""Test harness of the gateway: the real ``asya-gateway`` process on loopback, an SSE reader, and an actor stand-in.

``GatewayProcess`` runs ``python -m asya_gateway`` exactly as a pod or ``asya dev`` does (uvicorn, a free
port, the URL written to a file). ``StepActor`` plays one actor with the real transport and the real
status store, writing what a sidecar writes (running, FLY chunks, pause, final record) one step at a
time, so tests decide exactly when each event exists. Tests with a real mesh use tests/support/mesh.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from asya_common import envelope as env
from asya_common.settings import to_env
from asya_common.status import FLY, SUCCEEDED, Event, open_store
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from tests.support.require import wait_for


class GatewayProcess:
    """One gateway replica as a subprocess."""

    def __init__(self, tmp: Path, status_db: str, transport: TransportSettings, *, tools: dict | None = None,
                 keys: dict | None = None, env: dict[str, str] | None = None, name: str = "gw"):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.url_file = tmp / f"{name}.url"
        self.log_path = tmp / f"{name}.log"
        environ = {**os.environ, **to_env(transport), "ASYA_STATUS_DB": status_db, "ASYA_GATEWAY_PORT": "0",
                   "ASYA_GATEWAY_URL_FILE": str(self.url_file), "ASYA_GATEWAY_HOST": "127.0.0.1",
                   "ASYA_GATEWAY_POLL_INTERVAL": "0.02", "PYTHONUNBUFFERED": "1", **(env or {})}
        if tools is not None:
            (tmp / f"{name}-tools.json").write_text(json.dumps(tools))
            environ["ASYA_GATEWAY_TOOLS"] = str(tmp / f"{name}-tools.json")
        if keys is not None:
            (tmp / f"{name}-keys.json").write_text(json.dumps(keys))
            environ["ASYA_GATEWAY_API_KEYS"] = str(tmp / f"{name}-keys.json")
        self.environ = environ
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> "GatewayProcess":
        self.url_file.unlink(missing_ok=True)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "asya_gateway"], env=self.environ, stdout=self._log,
                                        stderr=subprocess.STDOUT)

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited {self.process.returncode}: {self.log()[-3000:]}")
            return self.url_file.exists()

        wait_for(up, timeout, 0.05, "gateway URL file")
        self.url = self.url_file.read_text()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()
        return self.process.returncode if self.process else 0


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class SSEReader:
    """Reads one SSE response frame by frame (``id``, ``event``, ``data`` as JSON) with keep-alive comments."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30):
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10))
        self.context = self.client.stream("GET", url, headers=headers or {})
        self.response = self.context.__enter__()
        self.lines = self.response.iter_lines()
        self.comments = 0

    def frames(self) -> Iterator[dict[str, Any]]:
        """Yields ``{"id", "event", "data"}`` per message until the server closes the stream."""
        frame: dict[str, Any] = {}
        for line in self.lines:
            if line == "":
                if "data" in frame:
                    frame["data"] = json.loads(frame["data"])
                    yield frame
                frame = {}
            elif line.startswith(":"):
                self.comments += 1
            else:
                field, _, value = line.partition(":")
                frame[field] = value[1:] if value.startswith(" ") else value

    def close(self) -> None:
        self.context.__exit__(None, None, None)
        self.client.close()

    def __enter__(self) -> "SSEReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StepActor:
    """Stands in for one actor: takes envelopes from its queue and writes what a sidecar would, step by step."""

    def __init__(self, store_location: str, transport: TransportSettings, name: str):
        self.store = open_store(store_location)
        self.transport_settings = transport
        self.name = name

    def take(self, timeout: float = 30) -> dict[str, Any]:
        """Receives and acks one envelope from this actor's queue."""

        async def go() -> dict[str, Any] | None:
            async with create_transport(self.transport_settings) as transport:
                messages = await transport.receive(env.queue_name(self.name, self.transport_settings.queue_prefix),
                                                   max_messages=1, wait_seconds=0.5)
                if not messages:
                    return None
                await transport.ack(messages[0])
                return env.loads(messages[0].body)

        return wait_for(lambda: asyncio.run(go()), timeout, 0.05, f"an envelope on {self.name}'s queue")

    def running(self, envelope: dict[str, Any]) -> None:
        self.store.mark_running(envelope["id"], self.name)

    def fly(self, envelope: dict[str, Any], *chunks: Any) -> list[int]:
        return self.store.append_events([Event(0, None, envelope["id"], FLY, self.name, c, time.time())
                                         for c in chunks])

    def finish(self, envelope: dict[str, Any], result: Any) -> None:
        done = env.copy_envelope(envelope)
        env.advance(done)
        self.store.record_final(done, SUCCEEDED, actor=self.name, result=result)

    def close(self) -> None:
        self.store.close()


def make_queues(transport: TransportSettings, *actors: str) -> None:
    async def go() -> None:
        async with create_transport(transport) as t:
            for actor in actors:
                await t.ensure_queue(QueueSpec(env.queue_name(actor, transport.queue_prefix),
                                               env.dlq_name(actor, transport.queue_prefix)))

    asyncio.run(go())


def depth(transport: TransportSettings, actor: str) -> int:
    async def go() -> int:
        async with create_transport(transport) as t:
            return (await t.depth(env.queue_name(actor, transport.queue_prefix))).total

    return asyncio.run(go())
