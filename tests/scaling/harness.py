"""Helpers of the scale-to-zero suite: the cluster bundle, the actor install, the observers of a run.

A run is observed from outside, as an operator would: the Deployment's replicas and its pods through
the API server, the final queues (``happy-end``, ``error-end``) through the broker, and the pods'
processes through ``/proc`` (every process the test kubelet starts carries ``ASYA_TEST_POD``).
Nothing here asserts timings: :class:`Timeline` records when each state was first seen and prints it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asya_common import envelope as env
from asya_common.transport import Transport, TransportError
from asya_controller.kube import KubeClient
from tests.support.cluster import REPO, ControlPlane
from tests.support.keda import Keda

TIMELINES: list[str] = []  # printed at the end of the session (conftest's pytest_terminal_summary)
HANDLER_IMAGE = "registry.local/asya-test/scaling-handlers"
HANDLERS = '''
"""Handlers of the scaling tests (they run on the real runtime, started by the test kubelet)."""
import os
import time


def work(payload):
    time.sleep(float(payload.get("sleep", 0.5)))
    return {**payload, "pid": os.getpid()}


def crash(payload):
    os._exit(70)  # the runtime process dies in the middle of the call, every time
'''


@dataclass
class ScalingCluster:
    """Control plane + controller-manager + scheduler + KEDA + the test kubelet of the suite."""

    plane: ControlPlane
    keda: Keda
    kubelet: subprocess.Popen
    workdir: Path

    def helm(self, helm: Path, *args: str) -> str:
        """Runs helm against the cluster; returns stdout (fails the test with stderr)."""
        home = self.workdir / "helm"
        environ = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig), "HELM_CACHE_HOME": str(home),
                   "HELM_CONFIG_HOME": str(home), "HELM_DATA_HOME": str(home)}
        proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=environ, timeout=180)
        assert proc.returncode == 0, f"helm {' '.join(args[:2])} failed: {proc.stderr}"
        return proc.stdout


def actor_values(actor: str, prefix: str, handler: str, concurrency: int = 1, max_replicas: int = 5) -> dict:
    """The test layer over the platform values: our handler image, short timings, a fast scale-down."""
    return {
        "name": actor, "image": {"repository": HANDLER_IMAGE, "tag": "1"}, "handler": handler,
        "concurrency": concurrency, "logLevel": "INFO",
        "resiliency": {"actorTimeout": "40s",
                       "policies": {"default": {"maxAttempts": 2, "initialInterval": "1s", "maxInterval": "2s"}}},
        "transport": {"queuePrefix": prefix, "queueDeletion": "delete"},
        "scaling": {"minReplicaCount": 0, "maxReplicaCount": max_replicas, "pollingInterval": 5,
                    "cooldownPeriod": 30, "queueLength": 5,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0,
                                               "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5}]}}},
        "sidecar": {"runtimeConnectTimeout": "60s"},
        "metrics": {"serviceMonitor": {"enabled": False}},
    }


def install_actor(cluster: ScalingCluster, helm: Path, namespace: str, platform: str, values: dict,
                  extra: list[str], tmp_path: Path) -> None:
    """``helm install <actor> charts/asya-actor -f values/platform/<platform>.yaml -f <test layer>``."""
    layer = tmp_path / f"{values['name']}-values.yaml"
    layer.write_text(yaml.safe_dump(values))
    cluster.helm(helm, "install", values["name"], str(REPO / "charts/asya-actor"), "-n", namespace,
                 "-f", str(REPO / "values/platform" / f"{platform}.yaml"), "-f", str(layer), *extra)


def pod_processes(kubelet_pid: int, namespace: str) -> list[str]:
    """``pid name`` of every live process the kubelet runs for a pod of ``namespace``.

    Looks only at the kubelet's descendants (parent links in ``/proc/*/stat``) and picks those whose
    environment carries the kubelet's ``ASYA_TEST_POD=<namespace>/...`` marker.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    marker = f"ASYA_TEST_POD={namespace}/".encode()
    found, todo = [], list(children.get(kubelet_pid, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            if any(item.startswith(marker) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")):
                found.append(f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}")
        except OSError:
            continue
    return found


@dataclass
class Timeline:
    """When each state was first observed, in seconds since :meth:`start`."""

    label: str
    t0: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.t0 = time.monotonic()

    def mark(self, what: str) -> None:
        """Records ``what`` the first time it is seen."""
        self.marks.setdefault(what, round(time.monotonic() - self.t0, 1))

    def note(self, text: str) -> None:
        self.notes.append(f"{time.monotonic() - self.t0:6.1f}s {text}")

    def render(self) -> str:
        lines = [f"timeline [{self.label}] (seconds after the first publish)"]
        lines += [f"  {t:6.1f}s  {what}" for what, t in sorted(self.marks.items(), key=lambda kv: kv[1])]
        lines += [f"  note {n}" for n in self.notes]
        return "\n".join(lines)


class Observer:
    """Polls the Deployment and its pods every 0.5 s; records replicas over time in a :class:`Timeline`."""

    def __init__(self, api: KubeClient, namespace: str, actor: str, timeline: Timeline, max_replicas: int,
                 finished=lambda: 0):
        self.api, self.ns, self.actor, self.timeline, self.max = api, namespace, actor, timeline, max_replicas
        self.finished = finished
        self.scale_in: tuple[float, int] | None = None  # (seconds, envelopes finished) when replicas left the max
        self.replicas = self.ready = self.pods = -1
        self.max_replicas_seen = self.max_ready_seen = self.max_restarts = 0
        self.history: list[tuple[float, int, int, int]] = []
        self._task: asyncio.Task | None = None

    async def snapshot(self) -> tuple[int, int, int]:
        """(spec.replicas, ready pods, pods that exist) right now."""
        dep = await self.api.request("GET", f"/apis/apps/v1/namespaces/{self.ns}/deployments/{self.actor}")
        pods = await self.api.request("GET", f"/api/v1/namespaces/{self.ns}/pods",
                                      query={"labelSelector": f"asya.sh/actor={self.actor}"})
        ready = sum(1 for p in pods["items"] if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])))
        for pod in pods["items"]:
            for status in pod.get("status", {}).get("containerStatuses") or []:
                self.max_restarts = max(self.max_restarts, int(status.get("restartCount", 0)))
        return int(dep["spec"].get("replicas", 1)), ready, len(pods["items"])

    async def _poll(self) -> None:
        while True:
            try:
                self.replicas, self.ready, self.pods = await self.snapshot()
            except Exception as exc:  # noqa: BLE001 - an API hiccup is noted, the next poll tries again
                self.timeline.note(f"observer: {exc}")
                await asyncio.sleep(1)
                continue
            changed = not self.history or self.history[-1][1:] != (self.replicas, self.ready, self.pods)
            if changed and self.timeline.t0:
                self.history.append((round(time.monotonic() - self.timeline.t0, 1),
                                     self.replicas, self.ready, self.pods))
            self.max_replicas_seen = max(self.max_replicas_seen, self.replicas)
            self.max_ready_seen = max(self.max_ready_seen, self.ready)
            if self.timeline.t0:
                if self.replicas >= 1:
                    self.timeline.mark("0->1 replicas (KEDA activated)")
                if self.ready >= 1:
                    self.timeline.mark("first pod Ready")
                if self.replicas >= self.max:
                    self.timeline.mark(f"max {self.max} replicas")
                if self.max_replicas_seen >= self.max and 0 < self.replicas < self.max and self.scale_in is None:
                    self.scale_in = (time.monotonic() - self.timeline.t0, self.finished())
                    self.timeline.mark(f"scale-in {self.max}->{self.replicas} ({self.scale_in[1]} finished)")
                if self.ready >= self.max:
                    self.timeline.mark(f"{self.max} pods Ready")
                if "0->1 replicas (KEDA activated)" in self.timeline.marks and self.replicas == 0:
                    self.timeline.mark("->0 replicas")
                if "->0 replicas" in self.timeline.marks and self.pods == 0:
                    self.timeline.mark("->0 pods")
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def render_history(self) -> str:
        return "  replicas/ready/pods: " + ", ".join(f"{t}s {r}/{rd}/{p}" for t, r, rd, p in self.history)


class Finals:
    """Consumes ``happy-end`` and ``error-end`` (acking) and keeps every envelope that arrived there."""

    def __init__(self, transport: Transport, prefix: str, timeline: Timeline):
        self.transport, self.prefix, self.timeline = transport, prefix, timeline
        self.happy: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task] = []

    async def _consume(self, actor: str, into: list) -> None:
        queue = env.queue_name(actor, self.prefix)
        while True:
            try:
                for message in await self.transport.receive(queue, max_messages=10, wait_seconds=1,
                                                            lease_seconds=30):
                    into.append(json.loads(message.body))
                    await self.transport.ack(message)
            except TransportError as exc:  # noted; an unacked message comes back and is counted then
                self.timeline.note(f"{queue}: {exc}")
                await asyncio.sleep(1)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume("happy-end", self.happy)),
                       asyncio.create_task(self._consume("error-end", self.errors))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def ids(self, which: str = "happy") -> set[str]:
        return {e["id"] for e in (self.happy if which == "happy" else self.errors)}
