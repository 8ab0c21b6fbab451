"""The chart and `asya dev` give the runtime and sidecar the same environment, key by key.

One values file sets every key the chart turns into env to a non-default value. The pinned helm renders
the chart; `asya dev` runs the same file; the env of the running processes (``/proc/<pid>/environ``) is
compared with the rendered containers' env. A new values key that reaches a pod but not `asya dev` (or
the other way round) fails here, unless it is listed below with the reason it differs.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from asya_common.settings import to_env

from tests.charts import helpers
from tests.support.mesh import Mesh
from tests.support.require import require

CHART = helpers.CHARTS / "asya-actor"

VALUES = {
    "name": "parity",
    "image": "registry.example.com/parity:1.0.0",
    "handler": "parity_handler.Handler.run",
    "handlerMode": "payload",
    "handlerArgs": {"factor": 3},
    "env": {"PARITY_FLAG": "on", "PYTHONPATH": "/opt/extra-libs"},
    "concurrency": 3,
    "logLevel": "DEBUG",
    "resiliency": {
        "actorTimeout": "45s",
        "policies": {"default": {"maxAttempts": 4, "backoff": "constant", "initialInterval": "2s",
                                 "maxInterval": "9s", "nonRetryableErrors": ["ValueError", "KeyError"]}},
        "deadLetter": {"maxReceiveCount": 7},
    },
    "transport": {"leaseSeconds": 17, "rabbitmq": {"existingSecret": "broker"}},
    "sidecar": {"shutdownGrace": "20s", "runtimeConnectTimeout": "90s"},
}

HANDLER = '''
class Handler:
    def __init__(self, factor: int = 1):
        self.factor = factor

    def run(self, payload):
        return payload * self.factor
'''

# Variables that differ on purpose, with the reason (docs/dev-loop.md, "Start the mesh").
DEV_OWN = {
    "ASYA_SOCKET_PATH": "a socket per actor in the state dir",
    "ASYA_METRICS_PORT": "any free port, shown in the asya dev table",
    "ASYA_METRICS_HOST": "asya dev binds the metrics port on loopback only",
    "ASYA_TRANSPORT": "the dev mesh's broker (--transport)",
    "ASYA_QUEUE_PREFIX": "the dev mesh's broker settings",
    "ASYA_RABBITMQ_URL": "the dev mesh's broker settings",
    "ASYA_RABBITMQ_EXCHANGE": "the dev mesh's broker settings",
    "HOME": "a pod has no home directory; a laptop has one",
    "PYTHONDONTWRITEBYTECODE": "a pod's root filesystem is read-only",
    "PYTHONPATH": "checked apart: the values folder first, then env's PYTHONPATH",
}


def _rendered_env(values_file: Path) -> dict[str, dict[str, str]]:
    deployment = helpers.one(helpers.render(CHART, values=[values_file]), "Deployment")
    out = {}
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        role = "runtime" if container["name"] == "asya-runtime" else "sidecar"
        out[role] = {e["name"]: e.get("value") for e in container.get("env", [])}
    return out


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_every_env_key_the_chart_renders_reaches_asya_dev_processes(tmp_path):
    require(helpers.tool("HELM", "helm") is not None, "helm not installed (make tools-helm)")
    require(Path("/proc/self/environ").exists(), "needs /proc to read process environments")
    values_dir = tmp_path / "actors"
    values_dir.mkdir()
    (values_dir / "parity_handler.py").write_text(HANDLER)
    values_file = _write(values_dir / "parity.yaml", VALUES)
    rendered = _rendered_env(values_file)
    mesh = Mesh(tmp_path, [], files=[values_file]).start(timeout=90)
    try:
        pids = mesh.pids()["parity"]
        running = {role: _process_env(pids[role]) for role in ("runtime", "sidecar")}
        record = mesh.wait_final(mesh.send(["parity"], 5)["id"])
        shell = {**os.environ, **mesh.extra_env, **to_env(mesh.transport_settings),
                 "ASYA_STATE_DIR": str(mesh.state)}  # what asya dev was started with
    finally:
        mesh.stop()
    assert record["result"] == 15  # handlerArgs reached the class
    problems = []
    for role, env in rendered.items():
        for key, value in env.items():
            if key in DEV_OWN or value is None:  # valueFrom (secrets) never has a literal to compare
                continue
            if running[role].get(key) != value:
                problems.append(f"{role} {key}: chart {value!r}, asya dev {running[role].get(key)!r}")
        added = {k for k, v in running[role].items() if k.startswith("ASYA_") and shell.get(k) != v}  # not inherited
        asya_dev_only = added - set(env) - set(DEV_OWN) - {"ASYA_STATUS_DB", "ASYA_SQLITE_PATH"}
        problems += [f"{role} {k}: set by asya dev, not by the chart" for k in sorted(asya_dev_only)]
    assert not problems, "chart and asya dev disagree:\n" + "\n".join(problems)
    pythonpath = running["runtime"]["PYTHONPATH"].split(":")
    assert pythonpath[0] == str(values_dir) and "/opt/extra-libs" in pythonpath
    assert rendered["runtime"]["PYTHONPATH"] == "/opt/asya-runtime:/opt/extra-libs"  # one entry, merged
