"""What ``asya dev`` watches besides the processes themselves: readiness, handler edits and restart requests.

- A process shows ``up`` in the table only once it serves: a runtime when its socket accepts a
  connection (it binds only after the handler imported), a sidecar when it logged ``sidecar ready``
  (which also names its metrics port, shown in the table). An actor whose import failed never shows up.
- ``asya dev --reload``: when a ``.py`` file under an actor's values folder changes, that actor's runtime
  is restarted (SIGTERM: in-flight calls finish, new ones wait in the queue) and the next call runs the new
  code. A restart asked for is never reported as a crash.
- ``asya dev restart ACTOR`` (another terminal) drops a request file in the state dir; the running mesh
  restarts that runtime and the command waits until the new one serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from asya_common import envelope as env
from asya_cli.common import CliError

REQUESTS_DIR = "restart-requests"
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", ".venv", "site-packages"}
_MAX_FILES = 5000


def _socket_accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _sidecar_ready_port(log_path: Path, offset: int) -> int | None:
    """The metrics port from the ``sidecar ready`` line written after ``offset``, or None before it."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if "sidecar ready" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "sidecar ready" in (record.get("msg"), record.get("event")):
            port = record.get("metrics_port")
            return port if isinstance(port, int) else 0
    return None


def update_readiness(proc: Any) -> None:
    """Moves a ``starting`` process to ``up`` once it serves (see the module docstring)."""
    if proc.state != "starting" or proc.process is None or proc.process.returncode is not None:
        return
    if proc.role == "runtime":
        if _socket_accepts(proc.env.get("ASYA_SOCKET_PATH", "")):
            proc.state = "up"
    elif proc.role == "sidecar":
        port = _sidecar_ready_port(proc.log_path, proc.log_offset)
        if port is not None:
            proc.state, proc.metrics_port = "up", port
    else:
        proc.state = "up"  # other processes (the gateway) have their own announcements


def restart_runtime(mesh: Any, actor: str, reason: str) -> bool:
    """SIGTERMs ``actor``'s runtime so the supervisor starts it again at once; False when it is not running."""
    for proc in mesh.processes:
        if proc.actor == actor and proc.role == "runtime" and proc.process and proc.process.returncode is None:
            proc.reload_requested = True
            proc.state = f"reloading ({reason})"
            proc.process.terminate()
            return True
    return False


def _handler_files(folder: Path, state_dir: Path) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of the ``.py`` files under ``folder`` (skipping caches, venvs, the state dir)."""
    found: dict[str, tuple[int, int]] = {}
    state = str(state_dir.resolve())
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                   and not str(Path(root, d).resolve()).startswith(state)]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                found[path] = (info.st_mtime_ns, info.st_size)
                if len(found) >= _MAX_FILES:
                    return found
    return found


async def watch(mesh: Any, reload: bool, interval: float = 0.5) -> None:
    """Runs for the life of the mesh: readiness, ``--reload`` and ``asya dev restart`` requests."""
    requests = mesh.state_dir / REQUESTS_DIR
    requests.mkdir(parents=True, exist_ok=True)
    os.chmod(requests, 0o700)
    folders = {}
    if reload:
        folders = {spec.name: spec.source.parent for spec in mesh.actors if spec.name not in env.TERMINAL_ACTORS}
    snapshots = {name: await asyncio.to_thread(_handler_files, folder, mesh.state_dir)
                 for name, folder in folders.items()}
    last_scan = time.monotonic()
    while True:
        for proc in mesh.processes:
            update_readiness(proc)
        for request in sorted(requests.glob("*")):
            request.unlink(missing_ok=True)
            restart_runtime(mesh, request.name, "asya dev restart")
        if folders and time.monotonic() - last_scan >= 1.0:
            last_scan = time.monotonic()
            for name, folder in folders.items():
                current = await asyncio.to_thread(_handler_files, folder, mesh.state_dir)
                if current != snapshots[name]:
                    snapshots[name] = current
                    restart_runtime(mesh, name, "files changed")
        await asyncio.sleep(interval)


def request_restart(state_dir: Path, actors: list[str], timeout: float = 60.0) -> int:
    """``asya dev restart ACTOR...``: asks the running mesh to restart runtimes and waits until they serve.

    Raises:
        CliError: No mesh running, an unknown actor, or a runtime that does not come back in time.
    """
    if not actors:
        raise CliError("asya dev restart needs actor names: asya dev restart ACTOR [ACTOR...]")
    from asya_cli.meshstate import require_running_mesh  # (asya_cli.dev imports this module)

    require_running_mesh(state_dir, "sqlite")
    known = json.loads((state_dir / "dev.json").read_text()).get("actors", [])
    unknown = [a for a in actors if a not in known]
    if unknown:
        raise CliError(f"no actor {', '.join(map(repr, unknown))} in the running mesh; its actors: {', '.join(known)}")

    def pids() -> dict[str, Any]:
        try:
            return json.loads((state_dir / "pids.json").read_text())
        except (OSError, ValueError):
            return {}

    before = {a: pids().get(a, {}).get("runtime") for a in actors}
    requests = state_dir / REQUESTS_DIR
    for actor in actors:
        (requests / actor).write_text(str(time.time()))
    deadline = time.monotonic() + timeout
    for actor in actors:
        while True:
            now = pids().get(actor, {}).get("runtime")
            sock = _socket_for(state_dir, actor)
            if now and now != before[actor] and sock and _socket_accepts(sock):
                print(f"restarted {actor}: runtime pid {before[actor]} -> {now}")
                break
            if time.monotonic() > deadline:
                raise CliError(f"{actor}'s runtime did not come back within {timeout:g}s; "
                               f"see {state_dir / 'logs' / (actor + '.runtime.log')}")
            time.sleep(0.1)
    return 0


def _socket_for(state_dir: Path, actor: str) -> str:
    from asya_cli.dev import socket_path

    return socket_path(state_dir.resolve(), actor)
