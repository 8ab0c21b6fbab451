"""The sidecar's /metrics and /healthz, as Prometheus and kubelet see them."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request


def _get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_count_processed_messages_per_actor(mesh):
    port = mesh.metrics_port("add-one")
    for _ in range(3):
        mesh.wait_final(mesh.send(["add-one"], {"x": 1})["id"])
    time.sleep(0.2)
    status, text = _get(port, "/metrics")
    assert status == 200
    succeeded = re.search(r'asya_messages_processed_total\{actor="add-one",outcome="succeeded"\} (\d+)', text)
    assert succeeded and float(succeeded.group(1)) >= 3
    assert re.search(r'asya_handler_duration_seconds_count\{actor="add-one"\} \d+', text)
    assert re.search(r'asya_messages_published_total\{actor="add-one",destination="happy-end"\}', text)


def test_health_and_readiness_probes_answer(mesh):
    port = mesh.metrics_port("echo")
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz") == (200, "ok\n")


def test_every_sidecar_log_line_is_json_with_actor_and_envelope_id(mesh):
    mesh.wait_final(mesh.send(["bad-rewrite"], {"x": 1})["id"])
    lines = [json.loads(line) for line in mesh.log("bad-rewrite", "sidecar").splitlines()]
    assert all(line["actor"] == "bad-rewrite" and "ts" in line for line in lines)
    failures = [line for line in lines if "attempts exhausted" in line["msg"]]
    assert failures and all(line.get("envelope_id") for line in failures)
