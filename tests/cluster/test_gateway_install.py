"""The gateway chart in a real API server, and the installed pod spec run as a real gateway.

Installs charts/asya-gateway with its Secrets created first (the chart only references them), checks the
restricted Pod Security admission accepts it, then takes the Deployment, ConfigMap and Secrets back from
the API server and starts ``python -m asya_gateway`` with exactly that env and those mounted files
(secret references resolved from the API server, mount paths moved to a temp dir, the port to a free
loopback one), over PostgreSQL and RabbitMQ: the installed configuration is one the gateway accepts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from asya_common import envelope as env
from asya_common.transport import QueueSpec, create_transport
from asya_gateway.auth import hash_token
from tests.support.cluster import REPO
from tests.support.require import free_port, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
CHART = REPO / "charts/asya-gateway"
TOKEN = "cluster-test-token-0123456789"


def run_helm(helm_bin: Path, plane, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HELM_CACHE_HOME": str(tmp / "cache"), "HELM_CONFIG_HOME": str(tmp / "config"),
               "HELM_DATA_HOME": str(tmp / "data"), "KUBECONFIG": str(plane.kubeconfig)}
    return subprocess.run([str(helm_bin), *args], capture_output=True, text=True, env=environ, timeout=180)


def get(plane, kind: str, name: str, namespace: str) -> dict:
    return json.loads(plane.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def secret(plane, name: str, namespace: str, **data: str) -> None:
    plane.kubectl("create", "secret", "generic", name, "-n", namespace,
                  *(f"--from-literal={k}={v}" for k, v in data.items()))


def pod_process(plane, namespace: str, deployment: dict, tmp: Path) -> tuple[dict[str, str], int]:
    """The gateway container's env as the kubelet would give it, with files where the volumes point."""
    spec = deployment["spec"]["template"]["spec"]
    gateway = spec["containers"][0]
    root = tmp / "pod"
    mounts = {}
    for volume in spec["volumes"]:
        target = root / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            for key, value in get(plane, "configmap", volume["configMap"]["name"], namespace)["data"].items():
                (target / key).write_text(value)
        if "secret" in volume:
            data = get(plane, "secret", volume["secret"]["secretName"], namespace)["data"]
            for item in volume["secret"].get("items") or [{"key": k, "path": k} for k in data]:
                (target / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
        mounts[volume["name"]] = target
    paths = {m["mountPath"]: str(mounts[m["name"]]) for m in gateway["volumeMounts"]}
    port = free_port()
    environ = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
    for item in gateway["env"]:
        if "valueFrom" not in item:  # the API server drops an empty `value`
            value = item.get("value", "")
            for mount_path in sorted(paths, key=len, reverse=True):  # a path under a mount, moved once
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = paths[mount_path] + value[len(mount_path):]
                    break
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = base64.b64decode(get(plane, "secret", ref["name"], namespace)["data"][ref["key"]]).decode()
        environ[item["name"]] = value
    assert environ.pop("ASYA_GATEWAY_HOST") == "0.0.0.0"  # the pod's; this test binds loopback only
    environ.update(ASYA_GATEWAY_HOST="127.0.0.1", ASYA_GATEWAY_PORT=str(port))
    return environ, port


def test_installed_gateway_chart_runs_as_a_real_gateway(control_plane, helm, tmp_path, postgres_url,
                                                        rabbitmq_settings):
    namespace = f"g-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
                          "pod-security.kubernetes.io/warn=restricted")
    keys = {"keys": [{"id": "ops", "sha256": hash_token(TOKEN), "scopes": ["submit", "read"]}]}
    secret(control_plane, "asya-status-db", namespace, url=postgres_url)
    secret(control_plane, "asya-gateway-keys", namespace, **{"keys.yaml": json.dumps(keys)})
    secret(control_plane, "rabbitmq-asya", namespace, url=rabbitmq_settings.rabbitmq_url)
    prefix = f"gw{uuid.uuid4().hex[:6]}-"
    installed = run_helm(helm, control_plane, tmp_path, "install", "gateway", str(CHART), "-n", namespace,
                     "-f", str(CHART / "ci/rabbitmq-values.yaml"), "--set", f"transport.queuePrefix={prefix}")
    assert installed.returncode == 0, installed.stderr
    assert "PodSecurity" not in installed.stderr, installed.stderr  # restricted: no warning for the Deployment
    deployment = get(control_plane, "deployment", "gateway-asya-gateway", namespace)
    again = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", check=False,
                                  input=json.dumps({k: deployment[k] for k in ("apiVersion", "kind", "spec")} |
                                                   {"metadata": {"name": "psa-check"}}))
    assert again.returncode == 0 and "PodSecurity" not in again.stderr, again.stderr
    assert get(control_plane, "service", "gateway-asya-gateway", namespace)["spec"]["ports"][0]["port"] == 80

    settings = replace(rabbitmq_settings, queue_prefix=prefix)

    async def make_queue() -> None:
        async with create_transport(settings) as transport:
            await transport.ensure_queue(QueueSpec(env.queue_name("summarize", prefix), env.dlq_name("summarize", prefix)))

    asyncio.run(make_queue())
    environ, port = pod_process(control_plane, namespace, deployment, tmp_path)
    log = open(tmp_path / "gateway.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "asya_gateway"], env=environ, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, 0.2, "the installed gateway to be ready")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert {t["name"] for t in httpx.get(f"{url}/tools", headers=headers).json()["tools"]} == \
            {"classify-digit", "summarize"}
        assert httpx.get(f"{url}/tools").status_code == 401
        accepted = httpx.post(f"{url}/envelopes", json={"tool": "summarize", "arguments": {"text": "hi"}},
                              headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert httpx.get(f"{url}/envelopes/{accepted.json()['id']}", headers=headers).json()["owner"] == "ops"
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    removed = run_helm(helm, control_plane, tmp_path, "uninstall", "gateway", "-n", namespace)
    assert removed.returncode == 0, removed.stderr
