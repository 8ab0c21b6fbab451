"""The chart's rendered pod, run as local processes: the env Helm writes is the env our processes need.

Images cannot be built here, so this takes the Deployment `helm template` renders for the RabbitMQ
scenario, gives each container's env (secret references resolved to the test broker, the socket moved
to a temp dir) to a real runtime and a real sidecar, and sends an envelope through them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace

from asya_common import envelope as env
from asya_common.transport import QueueSpec, create_transport
from tests.charts.helpers import CHARTS, container, one, render
from tests.support.require import require

HANDLER = '''
class handlers:
    def __init__(self, model, threshold):
        self.model, self.threshold = model, threshold

    def score(self, payload):
        import os
        return {**payload, "model": self.model, "threshold": self.threshold, "model_dir": os.environ["MODEL_DIR"]}
'''


def _env(spec: dict, secrets: dict[str, str]) -> dict[str, str]:
    out = {}
    for item in spec.get("env", []):
        if "value" in item:
            out[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            out[item["name"]] = secrets[item["name"]]
    return out


def test_rendered_rabbitmq_actor_processes_an_envelope(tmp_path, rabbitmq_settings):
    try:
        objects = render(CHARTS / "asya-actor", [CHARTS / "asya-actor" / "ci" / "rabbitmq-values.yaml"])
    except Exception as exc:  # noqa: BLE001 - helm missing is a skip/fail reason
        require(False, f"helm template failed: {exc}")
    deployment = one(objects, "Deployment")
    prefix = f"pod{os.getpid()}-"
    settings = replace(rabbitmq_settings, queue_prefix=prefix)
    secrets = {"ASYA_RABBITMQ_URL": settings.rabbitmq_url}
    socket = str(tmp_path / "asya-runtime.sock")
    (tmp_path / "judge.py").write_text(HANDLER)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    runtime_env = {**base, **_env(container(deployment, "asya-runtime"), secrets), "ASYA_SOCKET_PATH": socket,
                   "PYTHONPATH": str(tmp_path)}
    sidecar_env = {**base, **_env(container(deployment, "asya-sidecar"), secrets), "ASYA_SOCKET_PATH": socket,
                   "ASYA_METRICS_PORT": "0", "ASYA_QUEUE_PREFIX": prefix}
    assert runtime_env["ASYA_HANDLER"] == "judge.handlers.score"
    assert sidecar_env["ASYA_TRANSPORT"] == "rabbitmq"

    async def prepare():
        async with create_transport(settings) as transport:
            for actor in ("judge", "happy-end"):
                await transport.ensure_queue(QueueSpec(env.queue_name(actor, prefix), env.dlq_name(actor, prefix)))
            await transport.send(env.queue_name("judge", prefix), env.dumps(env.make_envelope(["judge"], {"x": 1})))

    async def collect():
        async with create_transport(settings) as transport:
            for _ in range(60):
                got = await transport.receive(env.queue_name("happy-end", prefix), wait_seconds=1)
                if got:
                    await transport.ack(got[0])
                    return json.loads(got[0].body)
        raise AssertionError("nothing reached happy-end")

    asyncio.run(prepare())
    runtime = subprocess.Popen([sys.executable, "-m", "asya_runtime"], env=runtime_env, cwd=tmp_path,
                               stderr=open(tmp_path / "runtime.log", "w"))
    sidecar = subprocess.Popen([sys.executable, "-m", "asya_sidecar"], env=sidecar_env, cwd=tmp_path,
                               stderr=open(tmp_path / "sidecar.log", "w"))
    try:
        result = asyncio.run(collect())
    finally:
        sidecar.terminate()
        runtime.terminate()
        sidecar.wait(30)
        runtime.wait(30)
    assert result["payload"] == {"x": 1, "model": "small", "threshold": 0.8, "model_dir": "/models"}
    assert result["route"]["prev"] == ["judge"]
    assert sidecar.returncode == 0 and runtime.returncode == 0  # both stop cleanly on SIGTERM
