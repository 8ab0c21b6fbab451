"""One pod of the test kubelet (tests/support/kubelet.py) as local processes.

Init containers run in order, then every container, restarted with a doubling back-off when it exits.
Images become local commands and folders (:class:`Image`); each pod gets its own folder per volume and
its own loopback port per ``containerPort``, and both are rewritten into env values and exec commands
(a mount path by prefix, a port where the exact number appears). Deletion runs ``preStop``, then SIGTERM,
then SIGKILL when the grace period is over. Every process gets ``ASYA_TEST_POD=<namespace>/<name>``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.kubelet import Kubelet


REPO = Path(__file__).resolve().parents[2]
PROBE_PERIOD_CAP = 2.0


@dataclass
class Image:
    """What a container image means here: its entrypoint, working dir, env and folders."""

    entrypoint: list[str] = field(default_factory=list)
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def _runtime_lib(workdir: Path) -> str:
    """The runtime image's /opt/asya/lib: the stdlib-only packages, copied once."""
    lib = workdir / "images" / "runtime-lib"
    if not lib.exists():
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / "images/runtime/asya_runtime", lib / "asya_runtime", ignore=ignore)
        shutil.copytree(REPO / "python/asya_common/asya_common", lib / "asya_common", ignore=ignore)
    return str(lib)


def builtin_images(workdir: Path) -> list[tuple[re.Pattern, Image]]:
    """Project images matched by repository name (any registry): runtime, sidecar, crew."""
    py = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return [
        (re.compile(r"(^|/)(asya-)?runtime$"),
         Image([sys.executable, "-m", "asya_runtime"], env=py, paths={"/opt/asya/lib": _runtime_lib(workdir)})),
        (re.compile(r"(^|/)(asya-)?sidecar$"), Image([sys.executable, "-m", "asya_sidecar"], env=py)),
        (re.compile(r"(^|/)(asya-)?crew$"), Image([sys.executable, "-m", "asya_runtime"], env=py)),
    ]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Pod:
    """One pod's processes, folders and ports."""

    def __init__(self, kubelet: "Kubelet", pod: dict[str, Any]):
        self.k, self.pod = kubelet, pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = kubelet.workdir / "p" / self.uid[:8]
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.ready: dict[str, bool] = {}
        self.restarts: dict[str, int] = {}
        self.stopping = False
        self.started = _now()
        self.ports = {p["containerPort"]: kubelet.free_port() for c in pod["spec"]["containers"]
                      for p in c.get("ports", [])}
        self.task = asyncio.create_task(self.run(), name=f"pod-{self.name}")

    # -- translation -------------------------------------------------------------------------
    def _mounts(self, container: dict[str, Any], image: Image) -> list[tuple[str, str]]:
        mapping = dict(image.paths)
        for mount in container.get("volumeMounts", []):
            folder = self.dir / "v" / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            mapping[mount["mountPath"].rstrip("/")] = str(folder)
        return sorted(mapping.items(), key=lambda kv: -len(kv[0]))

    def _translate(self, text: str, mounts: list[tuple[str, str]]) -> str:
        """Container ports -> the pod's loopback ports, then mount paths -> the pod's folders (one pass)."""
        for inside, outside in self.ports.items():
            text = re.sub(rf"(?<![\w.]){inside}(?![\w.])", str(outside), text)
        if not mounts:
            return text
        table = dict(mounts)
        pattern = "|".join(re.escape(inside) for inside, _ in mounts)  # longest first
        return re.sub(rf"({pattern})(?![\w.-])", lambda m: table[m.group(1)], text)

    def _host_argv(self, words: list[str], mounts: list[tuple[str, str]]) -> list[str]:
        """A pod spec's command or args as a host command: ``python`` is this venv's, paths and ports mapped."""
        return [sys.executable if word in ("python3", "python") else self._translate(word, mounts) for word in words]

    def _port(self, container: dict[str, Any], port: int | str) -> int:
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
        return self.ports.get(port, port)

    async def _env(self, container: dict[str, Any], image: Image, mounts) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **image.env}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            data = await self.k.object_data("secrets" if "secretRef" in source else "configmaps", self.ns,
                                            ref["name"], optional=ref.get("optional", False))
            env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for item in container.get("env", []):
            if "value" in item or "valueFrom" not in item:
                value = item.get("value", "")
                env[item["name"]] = (str(self.ports[int(value)]) if value.isdigit() and int(value) in self.ports
                                     else self._translate(value, mounts))
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                env[item["name"]] = self._field(source["fieldRef"]["fieldPath"])
            else:
                ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
                kind = "secrets" if "secretKeyRef" in source else "configmaps"
                data = await self.k.object_data(kind, self.ns, ref["name"], optional=ref.get("optional", False))
                if ref["key"] not in data and not ref.get("optional"):
                    raise LookupError(f"{kind} {self.ns}/{ref['name']} has no key {ref['key']!r}")
                if ref["key"] in data:
                    env[item["name"]] = data[ref["key"]]
        env["ASYA_TEST_POD"] = f"{self.ns}/{self.name}"
        return env

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return (meta.get(match.group(1)) or {}).get(match.group(2), "")
        return {"metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                "spec.nodeName": self.k.node, "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
                "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}[path]

    # -- processes ---------------------------------------------------------------------------
    async def _spawn(self, container: dict[str, Any]) -> asyncio.subprocess.Process:
        image = self.k.image(container["image"])
        mounts = self._mounts(container, image)
        # Only the pod spec's words are container paths; the image's entrypoint is already a host command
        # (this venv's python, which may itself live under /tmp, a path pods mount over).
        command = self._host_argv(container["command"], mounts) if container.get("command") else image.entrypoint
        argv = [*command, *self._host_argv(container.get("args", []), mounts)]
        env = await self._env(container, image, mounts)
        log = open(self.dir / f"{container['name']}.log", "ab")
        cwd = self._translate(container["workingDir"], mounts) if container.get("workingDir") else (
            image.workdir or str(self.dir))
        return await asyncio.create_subprocess_exec(*argv, env=env, cwd=cwd, stdout=log, stderr=log,
                                                    stdin=asyncio.subprocess.DEVNULL, start_new_session=True)

    async def _exec(self, container: dict[str, Any], command: list[str], timeout: float) -> bool:
        image = self.k.image(container["image"])
        mounts = self._mounts(container, image)
        argv = self._host_argv(command, mounts)
        proc = await asyncio.create_subprocess_exec(*argv, env=await self._env(container, image, mounts),
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        try:
            return await asyncio.wait_for(proc.wait(), timeout) == 0
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return False

    async def _probe(self, container: dict[str, Any], probe: dict[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://127.0.0.1:{self._port(container, get['port'])}{get.get('path', '/')}"
            try:
                status = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=timeout).status)
                return 200 <= status < 400
            except OSError:
                return False
        if "exec" in probe:
            return await self._exec(container, probe["exec"]["command"], timeout)
        return True

    async def run(self) -> None:
        """Init containers in order, then the containers, until the pod is deleted."""
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = self.pod["spec"]
        try:
            for init in spec.get("initContainers", []):
                await self.k.status(self, "Pending", initializing=init["name"])
                while not self.stopping:
                    proc = await self._spawn(init)
                    self.procs[init["name"]] = proc
                    if await proc.wait() == 0:
                        break
                    await asyncio.sleep(self.k.backoff)
            if self.stopping:
                return
            await asyncio.gather(*(self._keep_running(c) for c in spec["containers"]), self._report())
        except Exception as exc:  # noqa: BLE001 - a pod that cannot start is logged, never crashes the kubelet
            self.k.log(f"pod {self.ns}/{self.name} failed: {exc!r}\n{traceback.format_exc()}")
            await self.k.status(self, "Failed", message=str(exc))

    async def _keep_running(self, container: dict[str, Any]) -> None:
        name, delay = container["name"], self.k.backoff
        self.restarts[name] = 0
        probe = container.get("readinessProbe")
        while not self.stopping:
            proc = self.procs[name] = await self._spawn(container)
            self.ready[name] = probe is None
            checker = asyncio.create_task(self._readiness(container, probe)) if probe else None
            code = await proc.wait()
            if checker:
                checker.cancel()
            self.ready[name] = False
            if self.stopping:
                return
            self.restarts[name] += 1
            self.k.log(f"{self.ns}/{self.name}/{name} exited with {code}; restart in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.k.backoff_max)

    async def _readiness(self, container: dict[str, Any], probe: dict[str, Any]) -> None:
        period = min(float(probe.get("periodSeconds", 10)), PROBE_PERIOD_CAP)
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        while True:
            self.ready[container["name"]] = await self._probe(container, probe)
            await asyncio.sleep(period)

    async def _report(self) -> None:
        last = None
        while not self.stopping:
            state = (tuple(sorted(self.ready.items())), tuple(sorted(self.restarts.items())))
            if state != last:
                await self.k.status(self, "Running")
                last = state
            await asyncio.sleep(0.5)

    async def terminate(self, grace: float) -> None:
        """preStop hooks, SIGTERM, SIGKILL after ``grace`` seconds; then the pod object is removed."""
        if self.stopping:
            return
        self.stopping = True
        deadline = time.monotonic() + grace
        spec = self.pod["spec"]

        async def stop(container: dict[str, Any]) -> None:
            hook = (container.get("lifecycle") or {}).get("preStop", {}).get("exec")
            proc = self.procs.get(container["name"])
            if hook and proc and proc.returncode is None:
                await self._exec(container, hook["command"], max(0.0, deadline - time.monotonic()))
            if proc and proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    self.k.log(f"{self.ns}/{self.name}/{container['name']}: grace period over, SIGKILL")
            self._kill(proc)

        await asyncio.gather(*(stop(c) for c in [*spec.get("initContainers", []), *spec["containers"]]))
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def kill_now(self) -> None:
        """SIGKILL every process (the pod object is already gone)."""
        self.stopping = True
        for proc in self.procs.values():
            self._kill(proc)
        self.task.cancel()

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process | None) -> None:
        """SIGKILL to the container's process group (its children included), if anything is left of it."""
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
