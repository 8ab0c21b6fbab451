"""The gateway over a real dev mesh (``asya dev``: runtimes, sidecars, crew, gateway as processes).

A generator handler's FLY chunks reach an SSE client through the sidecar and the status store; fan-out
children appear once each in the record tree; a PAUSE is resumed over REST; ``asya send --stream``
prints chunks and the final record. ``asya dev`` prints the gateway's URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.gateway.harness import SSEReader
from tests.support.mesh import Mesh
from tests.support.require import wait_for

HANDLERS = Path(__file__).parent / "handlers" / "gw_handlers.py"
ACTORS = [
    {"name": "words", "handler": "gw_handlers.stream_words"},
    {"name": "split", "handler": "gw_handlers.split"},
    {"name": "approve", "handler": "gw_handlers.approve"},
    {"name": "publish", "handler": "gw_handlers.publish"},
]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, backend):
    """``asya dev`` with its gateway, on the SQLite file of its state dir or on PostgreSQL (ASYA_STATUS_DB)."""
    tmp = tmp_path_factory.mktemp("mesh")
    mesh = Mesh(tmp, ACTORS, env={"ASYA_STATUS_DB": backend.location} if backend.name == "postgres" else None)
    (mesh.values_dir / HANDLERS.name).write_text(HANDLERS.read_text())
    mesh.start()
    try:
        wait_for(lambda: (mesh.state / "gateway.url").exists(), 60, 0.1, "the dev gateway's URL")
        mesh.url = (mesh.state / "gateway.url").read_text()
        wait_for(lambda: "gateway: " + mesh.url in mesh.output(), 10, 0.1, "asya dev printing the gateway URL")
        yield mesh
    finally:
        mesh.stop()


def submit(mesh, route, payload) -> str:
    response = httpx.post(f"{mesh.url}/envelopes", json={"route": route, "payload": payload}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_fly_chunks_reach_the_sse_client_before_the_envelope_finishes(mesh):
    text = " ".join(f"w{i}" for i in range(12))
    envelope_id = submit(mesh, ["words"], {"text": text, "delay": 0.15})
    chunks, status_while_streaming = [], None
    with SSEReader(f"{mesh.url}/envelopes/{envelope_id}/stream") as reader:
        for frame in reader.frames():
            if frame["event"] == "fly":
                chunks.append(frame["data"]["data"]["text"])
                if len(chunks) == 1:
                    status_while_streaming = httpx.get(f"{mesh.url}/envelopes/{envelope_id}").json()["status"]
            if frame["event"] == "end":
                final = frame["data"]
    assert "".join(chunks) == text + " "
    assert status_while_streaming == "running", "the first chunk arrived only after the envelope finished"
    assert final["status"] == "succeeded" and final["result"] == {"words": 12}


def test_fan_out_children_appear_once_each_in_the_tree(mesh):
    envelope_id = submit(mesh, ["split", "publish"], {"n": 4})
    with SSEReader(f"{mesh.url}/envelopes/{envelope_id}/stream") as reader:
        final = [f for f in reader.frames() if f["event"] == "end"][0]["data"]
    ids = [envelope_id, *(b["id"] for b in final.get("branches", []))]
    assert sorted(ids) == sorted([envelope_id, *(f"{envelope_id}-{i}" for i in (1, 2, 3))])
    assert len(ids) == len(set(ids))
    assert final["status"] == "succeeded"
    assert all(b["status"] == "succeeded" for b in final["branches"])


def test_a_pause_is_resumed_over_rest_and_the_envelope_completes_with_the_input(mesh):
    envelope_id = submit(mesh, ["approve", "publish"], {"draft": "hello"})
    with SSEReader(f"{mesh.url}/envelopes/{envelope_id}/stream") as reader:
        frames = reader.frames()
        paused = next(f for f in frames if f["event"] == "paused")
        assert paused["data"]["data"]["prompt"] == "Approve the draft?"
        assert httpx.get(f"{mesh.url}/envelopes/{envelope_id}").json()["status"] == "paused"
        bad = httpx.post(f"{mesh.url}/envelopes/{envelope_id}/resume", json={"input": {"approved": "yes"}})
        assert bad.status_code == 422
        ok = httpx.post(f"{mesh.url}/envelopes/{envelope_id}/resume", json={"input": {"approved": True}})
        assert ok.status_code == 200, ok.text
        rest = list(frames)
    assert "resumed" in [f["event"] for f in rest]
    final = rest[-1]["data"]
    assert final["status"] == "succeeded" and final["result"] == {"published": True, "draft": "hello"}


def test_asya_send_stream_prints_chunks_then_the_final_record(mesh):
    for env in ({}, {"ASYA_GATEWAY_URL": mesh.url}):  # the dev mesh's gateway, then as a remote one
        environ = {**os.environ, **env}
        done = subprocess.run(
            [sys.executable, "-m", "asya_cli.main", "send", "--stream", "--route", "words", "--state-dir",
             str(mesh.state if not env else mesh.tmp / "elsewhere"), "--payload",
             '{"text": "one two three", "delay": 0.01}'],
            capture_output=True, text=True, timeout=120, env=environ)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "one two three "
        import json
        record = json.loads(lines[1])
        assert record["status"] == "succeeded" and record["result"] == {"words": 3}
        assert "trace: " in done.stderr


def test_asya_send_stream_without_a_gateway_says_how_to_get_one(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "ASYA_GATEWAY_URL"}
    done = subprocess.run([sys.executable, "-m", "asya_cli.main", "send", "--stream", "--route", "words",
                           "--state-dir", str(tmp_path), "--payload", "{}"], capture_output=True, text=True,
                          timeout=60, env=environ)
    assert done.returncode == 2 and "no gateway: start `asya dev`" in done.stderr


def test_pause_restart_every_process_then_resume_through_the_gateway(tmp_path, backend):
    """Pause, stop the whole mesh (gateway, sidecars, runtimes, crew), start it again, resume: it completes."""
    env = {"ASYA_STATUS_DB": backend.location} if backend.name == "postgres" else None

    def start() -> Mesh:
        mesh = Mesh(tmp_path, ACTORS, env=env)
        (mesh.values_dir / HANDLERS.name).write_text(HANDLERS.read_text())
        (mesh.state / "gateway.url").unlink(missing_ok=True)  # the first mesh's, stale after its stop
        mesh.start()
        wait_for(lambda: (mesh.state / "gateway.url").exists(), 60, 0.1, "the dev gateway's URL")
        mesh.url = (mesh.state / "gateway.url").read_text()
        return mesh

    first = start()
    try:
        envelope_id = submit(first, ["approve", "publish"], {"draft": "before the restart"})
        wait_for(lambda: httpx.get(f"{first.url}/envelopes/{envelope_id}").json()["status"] == "paused", 60, 0.1,
                 "the envelope to pause")
    finally:
        assert first.stop() == 0
    second = start()
    try:
        assert httpx.get(f"{second.url}/envelopes/{envelope_id}").json()["status"] == "paused"
        resumed = httpx.post(f"{second.url}/envelopes/{envelope_id}/resume", json={"input": {"approved": True}})
        assert resumed.status_code == 200, resumed.text
        with SSEReader(f"{second.url}/envelopes/{envelope_id}/stream") as reader:
            final = [f for f in reader.frames() if f["event"] == "end"][0]["data"]
        assert final["status"] == "succeeded"
        assert final["result"] == {"published": True, "draft": "before the restart"}
    finally:
        second.stop()
