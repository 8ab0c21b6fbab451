"""A real dev mesh for tests: ``asya dev`` as a subprocess, driven through the Python API.

Tests write actor values files, start the mesh, publish envelopes (or raw bodies) with the real
transport, and read final records from the real status store. Processes can be killed by pid
(``pids.json``) to prove that nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from asya_common import envelope as env
from asya_common.settings import to_env
from asya_common.status_store import StatusStore, is_settled
from asya_common.transport import TransportSettings, create_transport

HANDLERS_DIR = Path(__file__).resolve().parent.parent / "integration" / "handlers"


class Mesh:
    """One running ``asya dev`` with its state dir.

    Args:
        tmp: Directory for values files and state.
        actors: Values dicts (``name``, ``handler``...) written one per file.
        env: Extra environment for ``asya dev`` and its children (e.g. ``ASYA_LEASE_SECONDS``).
    """

    def __init__(self, tmp: Path, actors: list[dict[str, Any]], env: dict[str, str] | None = None,
                 files: list[Path] = (), transport: TransportSettings | None = None, dev_args: list[str] = ()):
        self.dev_args = list(dev_args)  # extra `asya dev` options (--reload)
        self.tmp = tmp
        self.state = tmp / "state"
        self.values_dir = tmp / "values"
        self.values_dir.mkdir(parents=True, exist_ok=True)
        for module in HANDLERS_DIR.glob("*.py"):
            (self.values_dir / module.name).write_text(module.read_text())
        self.files = list(files)
        for actor in actors:
            path = self.values_dir / f"{actor['name']}.yaml"
            path.write_text(yaml.safe_dump(actor))
            self.files.append(path)
        self.extra_env = {"ASYA_LEASE_SECONDS": "3", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.transport_settings = transport or TransportSettings(sqlite_path=str(self.state / "queues.sqlite3"))
        self._store: StatusStore | None = None

    def start(self, timeout: float = 60) -> "Mesh":
        environ = {**os.environ, **self.extra_env, "ASYA_STATE_DIR": str(self.state), "PYTHONUNBUFFERED": "1"}
        environ.pop("ASYA_TRANSPORT", None)
        environ.update(to_env(self.transport_settings))
        self.out = open(self.tmp / "dev.out", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asya_cli.main", "dev", "--state-dir", str(self.state), *self.dev_args,
             *map(str, self.files)],
            cwd=self.tmp, env=environ, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        names = {yaml.safe_load(f.read_text())["name"] for f in self.files if f.suffix != ".py"} | {"happy-end", "error-end"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"asya dev exited {self.process.returncode}: {self.output()}")
            if self.ready(names):
                return self
            time.sleep(0.1)
        self.stop()  # never leave a half-started mesh running after the test
        raise TimeoutError(f"mesh not ready: {self.output()}")

    def ready(self, names: set[str]) -> bool:
        pids = self.pids()
        try:  # also every actor `asya dev` generated (Flow DSL routers, fan-in)
            names = names | set(json.loads((self.state / "dev.json").read_text())["actors"])
        except (OSError, ValueError, KeyError):
            return False
        return all(set(pids.get(n, {})) == {"runtime", "sidecar"} and '"sidecar ready"' in self.log(n, "sidecar")
                   for n in names)

    def pids(self) -> dict[str, dict[str, int]]:
        try:
            return json.loads((self.state / "pids.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def output(self) -> str:
        return (self.tmp / "dev.out").read_text() if (self.tmp / "dev.out").exists() else ""

    def log(self, actor: str, role: str) -> str:
        path = self.state / "logs" / f"{actor}.{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics_port(self, actor: str) -> int:
        """The port of ``actor``'s sidecar HTTP server (/metrics, /healthz), from its readiness log line."""
        for line in self.log(actor, "sidecar").splitlines():
            record = json.loads(line)
            if record.get("msg") == "sidecar ready":
                return record["metrics_port"]
        raise AssertionError(f"the sidecar of {actor!r} never logged readiness")

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._store:
            self._store.close()
        self.out.close()
        return self.process.returncode if self.process else 0

    # -- publishing ---------------------------------------------------------------------
    def send_bodies(self, actor: str, bodies: list[bytes]) -> None:
        async def go() -> None:
            async with create_transport(self.transport_settings) as transport:
                for start in range(0, len(bodies), 200):
                    await transport.send_many(env.queue_name(actor, self.transport_settings.queue_prefix),
                                              bodies[start:start + 200])

        asyncio.run(go())

    def send(self, route: list[str], payload: Any, **fields: Any) -> dict[str, Any]:
        envelope = env.make_envelope(route, payload, headers=fields.pop("headers", None))
        envelope.update(fields)
        self.store.mark_pending(envelope["id"], route[0])
        self.send_bodies(envelope["route"]["curr"], [env.dumps(envelope)])
        return envelope

    # -- results ------------------------------------------------------------------------
    @property
    def store(self) -> StatusStore:
        if self._store is None:
            self._store = StatusStore(self.state / "status.sqlite3")
        return self._store

    def wait_final(self, envelope_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.store.tree(envelope_id)
            if record and is_settled(record):
                return record
            time.sleep(0.05)
        raise TimeoutError(f"envelope {envelope_id} not final after {timeout}s: {self.store.tree(envelope_id)}")

    def final_envelope(self, envelope_id: str) -> dict[str, Any]:
        return self.store.stored_envelope(envelope_id)[1]

    def kill(self, actor: str, role: str) -> int:
        pid = self.pids()[actor][role]
        os.kill(pid, signal.SIGKILL)
        return pid
