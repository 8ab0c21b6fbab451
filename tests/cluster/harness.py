"""Helpers of the cluster suite: actor Deployment manifests, the controller as a real subprocess, queue probes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from asya_common.transport import QueueNotFound, Transport, TransportSettings, create_transport

from tests.support.cluster import ControlPlane
from tests.support.require import free_port

REPO = Path(__file__).resolve().parents[2]


def actor_deployment(actor: str, *, transport: str = "sqlite", prefix: str = "asya-", max_receive: int = 10,
                     deletion: str = "keep", name: str | None = None) -> dict[str, Any]:
    """A Deployment carrying the actor metadata contract (docs/configuration.md), as the chart writes it."""
    labels = {"asya.sh/actor": actor, "app.kubernetes.io/name": "asya-actor", "app.kubernetes.io/instance": actor,
              "app.kubernetes.io/component": "actor", "app.kubernetes.io/part-of": "asya"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name or actor, "labels": labels,
            "annotations": {"asya.sh/transport": transport, "asya.sh/queue": f"{prefix}{actor}",
                            "asya.sh/dlq": f"{prefix}{actor}-dlq", "asya.sh/dlq-max-receive-count": str(max_receive),
                            "asya.sh/lease-seconds": "30", "asya.sh/queue-deletion": deletion},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"asya.sh/actor": actor}},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "asya-runtime", "image": "example.com/handler:1"}]}},
        },
    }


def apply(plane: ControlPlane, namespace: str, manifest: dict[str, Any], kubeconfig: Path | None = None) -> None:
    """``kubectl apply`` of one manifest into ``namespace``."""
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), kubeconfig=kubeconfig)


def get_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    """``kubectl get ... -o json`` decoded."""
    return json.loads(plane.kubectl("get", *args, "-o", "json").stdout)


def events_for(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events whose involved object is Deployment ``name``."""
    items = get_json(plane, "events", "-n", namespace)["items"]
    return [e for e in items if e["involvedObject"].get("name") == name
            and e["involvedObject"].get("kind") == "Deployment"]


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Polls an async or sync ``predicate`` until truthy; raises AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def queue_exists(transport: Transport, queue: str) -> bool:
    """True when ``queue`` exists on the broker."""
    try:
        await transport.depth(queue)
        return True
    except QueueNotFound:
        return False


def sqlite_settings(path: Path) -> TransportSettings:
    """Transport settings of an SQLite queue file."""
    return TransportSettings(kind="sqlite", sqlite_path=str(path))


async def open_transport(settings: TransportSettings) -> Transport:
    """A connected transport for the test to probe queues with."""
    transport = create_transport(settings)
    await transport.connect()
    return transport


def transport_env(settings: TransportSettings) -> dict[str, str]:
    """The ``ASYA_*`` variables that select ``settings`` in a subprocess."""
    return {"ASYA_TRANSPORT": settings.kind, "ASYA_QUEUE_PREFIX": settings.queue_prefix,
            "ASYA_SQLITE_PATH": settings.sqlite_path, "ASYA_RABBITMQ_URL": settings.rabbitmq_url,
            "ASYA_RABBITMQ_EXCHANGE": settings.rabbitmq_exchange, "ASYA_SQS_ENDPOINT_URL": settings.sqs_endpoint_url,
            "ASYA_SQS_REGION": settings.sqs_region, "ASYA_PUBSUB_PROJECT": settings.pubsub_project,
            "ASYA_PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host}


class ControllerProcess:
    """``python -m asya_controller`` as a real subprocess, logging to a file."""

    def __init__(self, workdir: Path, kubeconfig: Path, transport: TransportSettings, *, identity: str,
                 namespaces: str, lease_namespace: str, lease_name: str = "asya-controller", resync: str = "3s",
                 extra_env: dict[str, str] | None = None):
        self.identity = identity
        self.metrics_port = free_port()
        self.log_path = workdir / f"controller-{identity}.log"
        env = {**os.environ, **transport_env(transport),
               "ASYA_CONTROLLER_KUBECONFIG": str(kubeconfig), "ASYA_CONTROLLER_NAMESPACES": namespaces,
               "ASYA_CONTROLLER_RESYNC": resync, "ASYA_CONTROLLER_DLQ_INTERVAL": "1s",
               "ASYA_CONTROLLER_LEASE_NAME": lease_name, "ASYA_CONTROLLER_LEASE_NAMESPACE": lease_namespace,
               "ASYA_CONTROLLER_LEASE_DURATION": "6s", "ASYA_CONTROLLER_IDENTITY": identity,
               "ASYA_METRICS_PORT": str(self.metrics_port), "ASYA_METRICS_HOST": "127.0.0.1",
               "ASYA_LOG_LEVEL": "INFO", **(extra_env or {})}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "asya_controller"], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=workdir)

    def metrics(self) -> str:
        """The text of /metrics ('' when not answering)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def probe(self, path: str) -> int:
        """HTTP status of ``/healthz`` or ``/readyz`` (0 when not answering)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def metric(self, name: str, **labels: str) -> float | None:
        """Value of one sample of /metrics, or None when absent."""
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
        return None

    def logs(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no lease release, no goodbye."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
