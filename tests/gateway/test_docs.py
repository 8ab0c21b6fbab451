"""docs/gateway.md, run as a reader would: its handler file and tools file under `asya dev`, then its flow.

The page's ``python`` block (``# actors/writer.py``) and ``yaml`` tools block are taken verbatim; the test
submits the story tool, follows the stream until the pause, gets the 422 / 200 / 409 the page shows, and
runs ``asya send --stream --tool story`` while a person (the test) resumes it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway.harness import SSEReader
from tests.support.mesh import Mesh
from tests.support.require import wait_for

PAGE = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


@pytest.fixture(scope="module")
def docs_mesh(tmp_path_factory, backend):
    tmp = tmp_path_factory.mktemp("docs")
    handler = next(b for b in blocks("python") if b.startswith("# actors/writer.py"))
    tools = next(b for b in blocks("yaml") if b.startswith("# tools.yaml"))
    (tmp / "tools.yaml").write_text(tools)
    actors = [{"name": n, "handler": f"writer.{h}"} for n, h in (("write", "write"), ("review", "review"),
                                                                  ("publish", "publish"))]
    env = {"ASYA_GATEWAY_TOOLS": str(tmp / "tools.yaml")}
    if backend.name == "postgres":
        env["ASYA_STATUS_DB"] = backend.location
    mesh = Mesh(tmp, actors, env=env)
    (mesh.values_dir / "writer.py").write_text(handler)
    mesh.start()
    try:
        wait_for(lambda: (mesh.state / "gateway.url").exists(), 60, 0.1, "the gateway URL")
        mesh.url = (mesh.state / "gateway.url").read_text()
        yield mesh
    finally:
        mesh.stop()


def test_the_pages_flow_streams_pauses_and_resumes(docs_mesh):
    gw = docs_mesh.url
    assert yaml.safe_load(next(b for b in blocks("yaml") if b.startswith("# tools.yaml")))["tools"][0]["name"] == "story"
    accepted = httpx.post(f"{gw}/envelopes", json={"tool": "story", "arguments": {"topic": "a lighthouse"}})
    assert accepted.status_code == 202
    body = accepted.json()
    envelope_id = body["id"]
    assert body["route"] == ["write", "review", "publish"] and body["stream_url"] == f"/envelopes/{envelope_id}/stream"
    text = ""
    with SSEReader(f"{gw}/envelopes/{envelope_id}/stream") as reader:
        frames = reader.frames()
        for frame in frames:
            if frame["event"] == "fly":
                text += frame["data"]["data"]["text"]
            if frame["event"] == "paused":
                assert frame["data"]["data"]["prompt"] == "Publish this story?"
                break
        assert text == "a short story about a lighthouse "
        bad = httpx.post(f"{gw}/envelopes/{envelope_id}/resume", json={"input": {"approved": "yes"}})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
        assert httpx.post(f"{gw}/envelopes/{envelope_id}/resume", json={"input": {"approved": True}}).status_code == 200
        again = httpx.post(f"{gw}/envelopes/{envelope_id}/resume", json={"input": {"approved": False}})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_resumed"
        final = [f for f in frames if f["event"] == "end"][0]["data"]
    assert final["result"] == {"published": True, "story": "a short story about a lighthouse"}
    listed = httpx.get(f"{gw}/envelopes", params={"status": "succeeded", "limit": 20}).json()["records"]
    assert envelope_id in {r["id"] for r in listed}


def test_asya_send_stream_with_the_pages_tool(docs_mesh):
    process = subprocess.Popen(
        [sys.executable, "-m", "asya_cli.main", "send", "--stream", "--tool", "story", "--state-dir",
         str(docs_mesh.state), "--payload", '{"topic": "a lighthouse"}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        paused = wait_for(lambda: httpx.get(f"{docs_mesh.url}/envelopes",
                                            params={"status": "paused", "actor": "review"}).json()["records"],
                          60, 0.2, "the story to pause")
        assert httpx.post(f"{docs_mesh.url}/envelopes/{paused[0]['id']}/resume",
                          json={"input": {"approved": True}}).status_code == 200
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "a short story about a lighthouse "
    assert json.loads(lines[-1])["result"]["published"] is True
    assert "paused at review: 'Publish this story?'" in err and "asya paused resume" in err
