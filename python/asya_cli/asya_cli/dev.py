"""``asya dev``: the whole mesh as local processes, one runtime + sidecar pair per actor, plus the crew.

It is the same runtime and sidecar code that runs in a pod; only the supervisor differs: here a
crashed or restarted process (the runtime exits 75 after an ``actorTimeout``) is restarted by this
module, as kubelet would restart a container. Children run in their own session (Ctrl-C reaches only
the supervisor, which then stops sidecars first and runtimes last) and die with the supervisor.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from asya_common import dlq
from asya_common import envelope as env
from asya_common.protocol import RESTART_EXIT_CODE
from asya_common.settings import to_env
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from asya_cli import dev_gateway, local_access
from asya_cli.values import ActorSpec

CONFIG_EXIT_CODES = (2, 3)  # runtime/sidecar: invalid configuration / handler failed to load
DEV_FILE = "dev.json"


@dataclass
class ManagedProcess:
    """One supervised child process."""

    actor: str
    role: str  # "runtime" or "sidecar"
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    state: str = "starting"
    last_error: str = ""
    started_at: float = 0.0
    history: list[float] = field(default_factory=list)
    reload_requested: bool = False  # devwatch.restart_runtime: the exit that follows is not a crash
    metrics_port: int | None = None  # a sidecar's, once it logged "sidecar ready"
    log_offset: int = 0  # size of the log file when this run started
    reloaded: bool = False  # after a reload a broken import is the user's edit: keep the mesh, retry


def socket_path(state_dir: Path, actor: str) -> str:
    """A Unix socket path for ``actor`` short enough for the 108-byte limit."""
    candidate = state_dir / "sockets" / f"{actor}.sock"
    if len(str(candidate)) < 100:
        return str(candidate)
    return str(local_access.private_socket_dir() / f"{actor}.sock")  # fresh and 0700, never reused


def crew_specs(state_dir: Path, status_db: str | None = None) -> list[ActorSpec]:
    """happy-end and error-end as ordinary actors running the crew handlers."""
    specs = []
    for name, handler in ((env.HAPPY_END, "asya_crew.handlers.happy_end"), (env.ERROR_END, "asya_crew.handlers.error_end")):
        specs.append(ActorSpec(
            name=name, source=Path(__file__),
            runtime_env={"ASYA_ACTOR_NAME": name, "ASYA_HANDLER": handler, "ASYA_HANDLER_MODE": "envelope",
                         "ASYA_STATUS_DB": status_db or str(state_dir / "status.sqlite3")},
            sidecar_env={"ASYA_ACTOR_NAME": name}))  # concurrency 1; held messages wait in the runtime
    return specs


def trace_crew_like_actors(specs: list[ActorSpec]) -> None:
    """When an actor's values turn tracing on, happy-end and error-end export their hops to the same place."""
    traced = next((s.sidecar_env for s in specs if s.name not in env.TERMINAL_ACTORS
                   and "OTEL_EXPORTER_OTLP_ENDPOINT" in s.sidecar_env), None)
    for spec in specs:
        if traced is not None and spec.name in env.TERMINAL_ACTORS:
            spec.sidecar_env.update({k: v for k, v in traced.items() if k.startswith("OTEL_")},
                                    OTEL_SERVICE_NAME=spec.name)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the supervisor dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class DevMesh:
    """Starts, supervises and stops the local mesh.

    Args:
        actors: User actors from values files.
        transport_settings: The broker (embedded SQLite by default).
        state_dir: Where queues, the status store, sockets and logs live.
        base_env: Environment the children inherit (PATH, HOME...).
        out: Where the state table is printed.
        with_crew: Also run happy-end and error-end (benchmarks drain happy-end themselves).
        reload: Restart an actor when its source changes (``asya dev --reload``).
        python: The interpreter of the runtimes and sidecars (benchmarks run them as in the images).
    """

    def __init__(self, actors: list[ActorSpec], transport_settings: TransportSettings, state_dir: Path,
                 base_env: dict[str, str], out: TextIO = sys.stdout, with_crew: bool = True, reload: bool = False,
                 python: str = sys.executable):
        self.reload = reload  # `asya dev --reload` (devwatch.py)
        self.state_dir = state_dir
        self.transport_settings = transport_settings
        # The status store: the state dir's SQLite file, or ASYA_STATUS_DB (a postgresql:// URL) when set.
        self.status_db = base_env.get("ASYA_STATUS_DB") or str(state_dir / "status.sqlite3")
        self.actors = [*actors, *(crew_specs(state_dir, self.status_db) if with_crew else [])]
        trace_crew_like_actors(self.actors)
        self.out = out
        self.processes: list[ManagedProcess] = []
        self._stopping = asyncio.Event()
        self.fatal: str | None = None
        logs = state_dir / "logs"
        transport_env = to_env(transport_settings)
        for spec in self.actors:
            sock = socket_path(state_dir, spec.name)
            pythonpath = ":".join(p for p in (str(spec.source.parent), spec.runtime_env.get("PYTHONPATH", ""),
                                              base_env.get("PYTHONPATH", "")) if p)  # values dir, env's, shell's
            common = {**base_env, "PYTHONUNBUFFERED": "1", "ASYA_SOCKET_PATH": sock}
            runtime_env, sidecar_env = (  # a chart default gives way to the same variable set for `asya dev`
                {k: v for k, v in env_.items() if k not in spec.defaulted or k not in base_env}
                for env_ in (spec.runtime_env, spec.sidecar_env))
            self.processes.append(ManagedProcess(
                spec.name, "runtime", [python, "-m", "asya_runtime"],
                {**common, **runtime_env, "PYTHONPATH": pythonpath}, logs / f"{spec.name}.runtime.log"))
            self.processes.append(ManagedProcess(
                spec.name, "sidecar", [python, "-m", "asya_sidecar"],
                {**common, **transport_env, **sidecar_env, "ASYA_METRICS_PORT": "0", "ASYA_METRICS_HOST": "127.0.0.1",
                 "ASYA_STATUS_DB": self.status_db if with_crew else ""},
                logs / f"{spec.name}.sidecar.log"))
        if with_crew:  # the gateway reads the store the crew writes (dev_gateway.py)
            crew_db = next(s.runtime_env["ASYA_STATUS_DB"] for s in self.actors if s.name == env.HAPPY_END)
            self.processes.append(ManagedProcess(
                "gateway", "gateway", dev_gateway.gateway_argv(),
                dev_gateway.gateway_env(state_dir, base_env, transport_env, crew_db), logs / "gateway.log"))

    async def prepare(self) -> None:
        """Creates every queue and DLQ (actors and crew) and records the transport for ``asya send``."""
        local_access.lock_down(self.state_dir)  # umask 0077: every file of the mesh is owner-only
        (self.state_dir / "logs").mkdir(exist_ok=True)
        prefix = self.transport_settings.queue_prefix
        async with create_transport(self.transport_settings) as transport:
            for spec in self.actors:
                max_receive = int(spec.sidecar_env.get("ASYA_DLQ_MAX_RECEIVE_COUNT", 10))
                results = await transport.ensure_queue(QueueSpec(env.queue_name(spec.name, prefix),
                                                                 env.dlq_name(spec.name, prefix), max_receive))
                for result in results:
                    if result.drift:
                        print(f"warning: queue {result.queue} exists with different settings {result.drift}; "
                              "left as is", file=self.out)
        (self.state_dir / DEV_FILE).write_text(json.dumps({
            **local_access.redact(to_env(self.transport_settings)),  # no credential in clear
            "actors": [s.name for s in self.actors], "pid": os.getpid()}, indent=2))

    def stop(self) -> None:
        """Requests an orderly shutdown (what Ctrl-C does)."""
        self._stopping.set()

    async def run(self) -> int:
        """Runs until :meth:`stop` or a fatal configuration error; returns the exit code."""
        await self.prepare()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        runtimes = [p for p in self.processes if p.role == "runtime"]
        sidecars = [p for p in self.processes if p.role == "sidecar"]
        gateways = [p for p in self.processes if p.role == "gateway"]
        tasks = [asyncio.create_task(self._supervise(p)) for p in runtimes + sidecars + gateways]
        display = asyncio.create_task(self._display())
        from asya_cli import devwatch  # (it imports modules that import this one)

        tasks.append(asyncio.create_task(devwatch.watch(self, self.reload)))
        tasks += [asyncio.create_task(dev_gateway.announce(self.state_dir, self.out, p.log_path)) for p in gateways]
        await self._stopping.wait()
        display.cancel()
        await self._terminate(gateways, timeout=10)
        print("stopping: sidecars first (in-flight messages finish or return to their queues)...", file=self.out)
        await self._terminate(sidecars, timeout=30)
        await self._terminate(runtimes, timeout=10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.fatal:
            print(f"asya dev: {self.fatal}", file=self.out)
            return 1
        print("stopped.", file=self.out)
        return 0

    async def _supervise(self, proc: ManagedProcess) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            proc.log_offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
            log = open(proc.log_path, "ab")
            proc.process = await asyncio.create_subprocess_exec(
                *proc.argv, env=proc.env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent)
            log.close()
            proc.state, proc.started_at = "starting", time.monotonic()  # "up" once it serves (devwatch)
            self._write_pids()
            code = await proc.process.wait()
            if proc.reload_requested and not self._stopping.is_set():  # asked for: not a crash
                proc.reload_requested, proc.reloaded = False, True
                continue
            if self._stopping.is_set():
                proc.state = "stopped"
                return
            proc.last_error = _last_line(proc.log_path)
            if code in CONFIG_EXIT_CODES and proc.restarts == 0 and not proc.reloaded:
                self.fatal = f"{proc.actor} {proc.role} cannot start (exit {code}): {proc.last_error}"
                proc.state = "failed"
                self.stop()
                return
            proc.restarts += 1
            if code == RESTART_EXIT_CODE:
                proc.state, delay = "restarting", 0.0
            else:
                proc.state = f"{'exited' if code == 0 else 'crashed'} (exit {code}); restarting"
                delay = 0.5 if time.monotonic() - proc.started_at > 30 else min(delay * 2, 30.0)
                if proc.reloaded:  # --reload: a broken edit is retried soon, so the fix is picked up at once
                    delay = min(delay, 2.0)
            await asyncio.sleep(delay)

    def _write_pids(self) -> None:
        """Records live pids in ``pids.json`` (for operators and the crash tests)."""
        pids: dict[str, dict[str, int]] = {}
        for p in self.processes:
            if p.process is not None and p.process.returncode is None:
                pids.setdefault(p.actor, {})[p.role] = p.process.pid
        tmp = self.state_dir / "pids.json.tmp"
        tmp.write_text(json.dumps(pids, indent=2))
        tmp.replace(self.state_dir / "pids.json")

    async def _terminate(self, procs: list[ManagedProcess], timeout: float) -> None:
        alive = [p.process for p in procs if p.process and p.process.returncode is None]
        for process in alive:
            process.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), timeout)
        except asyncio.TimeoutError:
            for process in alive:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in alive))

    async def _display(self) -> None:
        """Prints the table whenever it changes; a broker that goes away is waited for, never fatal."""
        while True:
            try:
                await self._display_rows()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker restarting: say so, reconnect
                self.out.write(f"[{time.strftime('%H:%M:%S')}] broker unreachable ({type(exc).__name__}: "
                               f"{str(exc)[:200]}); retrying\n")
                self.out.flush()
                await asyncio.sleep(2.0)

    async def _display_rows(self) -> None:
        last = None
        dead: dict[str, int] = {}
        async with create_transport(self.transport_settings) as transport:
            while True:
                await self._record_dead_letters(transport, dead)
                rows = []
                for spec in self.actors:
                    pair = [p for p in self.processes if p.actor == spec.name]
                    depth = await transport.depth(env.queue_name(spec.name, self.transport_settings.queue_prefix))
                    dlq = await transport.depth(env.dlq_name(spec.name, self.transport_settings.queue_prefix))
                    port = next((p.metrics_port for p in pair if p.role == "sidecar"), None)
                    rows.append((spec.name, *(f"{p.state}" + (f" x{p.restarts}" if p.restarts else "") for p in pair),
                                 f":{port}" if port else "-",
                                 f"{depth.ready}/{depth.in_flight}/{depth.delayed}", str(dlq.total)))
                if rows != last:
                    self.out.write(_table(rows))
                    self.out.flush()
                    last = rows
                await asyncio.sleep(1.0)


    async def _record_dead_letters(self, transport: Any, seen: dict[str, int]) -> None:
        """A DLQ that holds messages: their records become ``dead_lettered`` (never ``running`` forever)."""
        for spec in self.actors:
            queue = env.dlq_name(spec.name, self.transport_settings.queue_prefix)
            total = (await transport.depth(queue)).total
            if total and total != seen.get(queue):
                from asya_common.status import open_store

                store = await asyncio.to_thread(open_store, self.status_db)
                try:
                    await dlq.record_dead_letters(transport, store, queue)
                finally:
                    store.close()
            seen[queue] = total


def _table(rows: list[tuple[str, ...]]) -> str:
    header = ("actor", "runtime", "sidecar", "metrics", "queue ready/in-flight/delayed", "dlq")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    return f"[{time.strftime('%H:%M:%S')}]\n" + "\n".join(lines) + "\n"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def read_dev_file(state_dir: Path) -> dict[str, Any] | None:
    """The ``dev.json`` a running (or last) ``asya dev`` wrote, or None."""
    path = state_dir / DEV_FILE
    return json.loads(path.read_text()) if path.exists() else None
