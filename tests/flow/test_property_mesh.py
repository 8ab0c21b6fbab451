"""The property test on a real `asya dev` mesh: compiled flows give what the Python function gives.

One mesh (SQLite queue, status store) runs tests/flow/flows.py with the actors of
tests/flow/flow_actors.py. Each Hypothesis example is a batch of generated states; every state is
sent through every flow at once, and each final record must equal the in-process call of the same
flow on the same state (the result on success, the error type on failure).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asya_common import envelope as env
from asya_common.status_store import is_settled
from tests.flow.oracle import ACTORS, ACTORS_FILE, FLOW_NAMES, FLOWS_FILE, expected, inputs
from tests.support.mesh import Mesh

POLICY = {"policies": {"default": {"maxAttempts": 2, "backoff": "constant", "initialInterval": "20ms",
                                   "maxInterval": "20ms"}}}
EXAMPLES, MIN_BATCH, MAX_BATCH = 5, 30, 50
COUNTS = {"examples": 0, "inputs": 0, "envelopes": 0}


def start_flow_mesh(tmp: Path, flows_file: Path, actor_names: list[str], env_extra: dict | None = None) -> Mesh:
    """`asya dev <flows file> <one values file per actor>` with flow_actors.py importable by every actor."""
    actors = [{"name": name, "handler": f"flow_actors.{name.replace('-', '_')}", "concurrency": 4,
               "resiliency": POLICY} for name in actor_names]
    (tmp / "src").mkdir(parents=True, exist_ok=True)
    flow_copy = tmp / "src" / flows_file.name
    shutil.copy(flows_file, flow_copy)
    mesh = Mesh(tmp, actors, env=env_extra, files=[flow_copy])
    shutil.copy(ACTORS_FILE, mesh.values_dir / ACTORS_FILE.name)
    return mesh.start(timeout=300)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    m = start_flow_mesh(tmp_path_factory.mktemp("flowmesh"), FLOWS_FILE, sorted(ACTORS))
    yield m
    print(f"\nflow property test on the mesh: {COUNTS['examples']} batches, {COUNTS['inputs']} generated inputs, "
          f"{COUNTS['envelopes']} envelopes ({len(FLOW_NAMES)} flows each)")
    assert m.stop() == 0


def entry_routes(mesh: Mesh) -> dict[str, list[str]]:
    routes = {}
    for path in (mesh.state / "flows").glob("*.routes.json"):
        data = json.loads(path.read_text())
        routes[data["flow"]] = data["entry"]["route"]
    return routes


def run_batch(mesh: Mesh, jobs: list[tuple[str, dict]], timeout: float = 600) -> dict[str, tuple[str, object]]:
    """Publishes every (flow, state) at once; returns envelope id -> (status, result or error type)."""
    routes = entry_routes(mesh)
    by_queue: dict[str, list[bytes]] = {}
    ids = []
    for flow, payload in jobs:
        envelope = env.make_envelope(routes[flow], payload)
        mesh.store.mark_pending(envelope["id"], routes[flow][0])
        by_queue.setdefault(routes[flow][0], []).append(env.dumps(envelope))
        ids.append(envelope["id"])
    for queue, bodies in by_queue.items():
        mesh.send_bodies(queue, bodies)
    deadline = time.monotonic() + timeout
    finals: dict[str, tuple[str, object]] = {}
    while len(finals) < len(ids):
        assert time.monotonic() < deadline, f"{len(ids) - len(finals)} envelopes not final after {timeout}s"
        for envelope_id in ids:
            if envelope_id in finals:
                continue
            record = mesh.store.tree(envelope_id)
            if record and is_settled(record):
                finals[envelope_id] = ((record["status"], record.get("result")) if record["status"] == "succeeded"
                                       else (record["status"], (record.get("error") or {}).get("type")))
        time.sleep(0.2)
    return {i: finals[i] for i in ids}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.timeout(900)
@given(batch=st.lists(inputs(), min_size=MIN_BATCH, max_size=MAX_BATCH))
def test_compiled_flows_on_the_mesh_equal_the_python_functions(mesh, batch):
    jobs = [(flow, payload) for payload in batch for flow in FLOW_NAMES]
    results = run_batch(mesh, jobs)
    COUNTS["examples"] += 1
    COUNTS["inputs"] += len(batch)
    COUNTS["envelopes"] += len(jobs)
    for (flow, payload), got in zip(jobs, results.values()):
        assert got == expected(flow, payload), (flow, payload)


def test_asya_send_flow_runs_the_compiled_entry(mesh):
    payload = {"x": 12, "score": 0, "chunks": [1, 2], "tag": "t"}
    out = subprocess.run([sys.executable, "-m", "asya_cli.main", "send", "--state-dir", str(mesh.state), "--flow",
                          "branchy", "--payload", json.dumps(payload), "--wait", "--timeout", "120"],
                         capture_output=True, text=True, cwd=mesh.tmp)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert ("succeeded", record["result"]) == expected("branchy", payload)
    unknown = subprocess.run([sys.executable, "-m", "asya_cli.main", "send", "--state-dir", str(mesh.state),
                              "--flow", "nope", "--payload", "{}"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "no compiled flow 'nope'" in unknown.stderr and "branchy" in unknown.stderr
