"""The digits example callable both ways: an MCP tool and an A2A skill over the real pipeline.

``asya dev`` runs examples/digits/actors (validate, classify with a scikit-learn model, judge,
human-review, store); the gateway serves examples/digits/tools.yaml. A doubtful scan pauses in
human-review: the MCP client answers through elicitation, the A2A client with a follow-up message.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import mcp_types as types
import pytest
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts
from a2a.types import a2a_pb2 as pb

from tests.gateway.harness import GatewayProcess
from tests.gateway_protocols.test_a2a import collect, connect as a2a_connect, message
from tests.gateway_protocols.test_mcp import connect as mcp_connect
from tests.gateway_protocols.test_mesh import KEYS
from tests.support.mesh import Mesh

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="module")
def digits_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    mesh = Mesh(tmp, [], files=sorted((EXAMPLE / "actors").glob("*.yaml"))).start(timeout=180)
    gateway = GatewayProcess(tmp / "gw", str(mesh.state / "status.sqlite3"), mesh.transport_settings, keys=KEYS,
                             env={"ASYA_GATEWAY_TOOLS": str(EXAMPLE / "tools.yaml")})
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        mesh.stop()


def scans():
    from sklearn.datasets import load_digits

    digits = load_digits()
    clear = {"scan_id": "clear-0", "pixels": digits.data[0].tolist(), "true_label": int(digits.target[0])}
    blurred = {"scan_id": "blurred", "pixels": [(a + b) / 2 for a, b in zip(digits.data[1787], digits.data[1793])]}
    return clear, blurred


async def test_mcp_classifies_a_clear_scan_and_asks_a_person_about_a_blurred_one(digits_gateway):
    clear, blurred = scans()
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"label": 8, "note": "overlaid"})

    async with mcp_connect(digits_gateway, elicitation_callback=elicit) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        confident = await client.call_tool("classify-digit", clear)
        reviewed = await asyncio.wait_for(client.call_tool("classify-digit", blurred), 150)
    assert "classify-digit" in names
    assert confident.structured_content["result"]["label"] == clear["true_label"]
    assert confident.structured_content["result"]["verdict"] == "auto"
    assert len(asked) == 1 and asked[0].startswith("Scan blurred: the model says")
    assert reviewed.structured_content["result"]["verdict"] == "human"
    assert reviewed.structured_content["result"]["label"] == 8


async def test_a2a_task_waits_for_input_and_a_follow_up_message_answers_it(digits_gateway):
    _, blurred = scans()
    blurred = {**blurred, "scan_id": "blurred-a2a"}
    async with a2a_connect(digits_gateway.url) as (client, card):
        assert [s.id for s in card.skills] == ["classify-digit"]
        events = await asyncio.wait_for(collect(client.send_message(message(None, blurred))), 150)
        asking = events[-1].status_update.status
        assert asking.state == pb.TASK_STATE_INPUT_REQUIRED
        assert get_text_parts(asking.message.parts)[0].startswith("Scan blurred-a2a: the model says")
        task_id = events[0].task.id
        answered = await asyncio.wait_for(collect(client.send_message(message(None, {"label": 3}, task_id=task_id))),
                                          150)
    assert answered[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    [result] = [e.artifact_update.artifact for e in answered
                if e.HasField("artifact_update") and e.artifact_update.artifact.artifact_id == "result"]
    assert get_data_parts(result.parts)[0]["result"]["label"] == 3
    assert get_data_parts(result.parts)[0]["result"]["verdict"] == "human"


def test_the_documented_agent_clients_script_runs_both_ways(digits_gateway):
    import json
    import subprocess
    import sys

    from tests.gateway_protocols.conftest import TOKEN

    done = subprocess.run([sys.executable, str(EXAMPLE / "agent_clients.py"), "--url", digits_gateway.url,
                           "--token", TOKEN, "--label", "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    calls = {line.get("mcp") or line.get("a2a"): line for line in lines if "mcp" in line or "a2a" in line}
    assert calls["clear-0"]["result"]["verdict"] == "auto" and calls["clear-0"]["result"]["label"] == 0
    [mcp_blurred] = [v for k, v in calls.items() if k.startswith("blurred") and "mcp" in v]
    [a2a_blurred] = [v for k, v in calls.items() if k.startswith("blurred") and "a2a" in v]
    assert mcp_blurred["result"] == {**mcp_blurred["result"], "verdict": "human", "label": 8}
    assert a2a_blurred["state"] == "TASK_STATE_COMPLETED" and a2a_blurred["result"]["label"] == 8
    assert any("mcp_progress" in line for line in lines)
