"""MCP and A2A over a real ``asya dev`` mesh: real runtimes and sidecars run the handlers below.

Runs on both status stores: the state dir's SQLite file, and a PostgreSQL database given to the whole
mesh (sidecars, crew) and the gateway through ``ASYA_STATUS_DB``.
"""

from __future__ import annotations

import asyncio
import textwrap
import uuid

import pytest
from a2a.helpers.proto_helpers import get_data_parts
from a2a.types import a2a_pb2 as pb
import mcp_types as types

from asya_gateway.auth import hash_token
from tests.gateway.harness import GatewayProcess
from tests.gateway_protocols.conftest import REVIEW, TEXT, TOKEN
from tests.gateway_protocols.test_a2a import collect, connect as a2a_connect, message
from tests.gateway_protocols.test_mcp import connect as mcp_connect
from tests.support.mesh import Mesh

HANDLERS = textwrap.dedent('''
    """Handlers of the protocol tests; like a user's, they import nothing from Asya."""

    def words(payload):
        for word in payload["text"].split():
            yield ("FLY", {"token": word.upper()})
        if payload.get("fail"):
            raise ValueError(f"cannot shout {payload['text']!r}")
        yield {"text": payload["text"].upper(), **{k: payload[k] for k in ("approved",) if k in payload}}

    def review(payload):
        yield ("PAUSE", {"prompt": "Approve this text?", "schema": %r})
        yield payload

    def fan(payload):
        return [{"text": f"{payload['text']} {i}"} for i in range(payload["n"])]
''' % REVIEW)

ONCE = {"policies": {"default": {"maxAttempts": 1}}}
TOOLS = {"tools": [
    {"name": "shout", "route": ["words"], "timeout": "60s", "inputSchema": TEXT},
    {"name": "broken", "route": ["words"], "timeout": "60s",
     "inputSchema": {"type": "object", "required": ["text", "fail"],
                     "properties": {"text": {"type": "string"}, "fail": {"const": True}}}},
    {"name": "review", "route": ["review", "words"], "timeout": "60s", "inputSchema": TEXT},
    {"name": "fan", "route": ["fan", "words"], "timeout": "60s",
     "inputSchema": {"type": "object", "required": ["text", "n"],
                     "properties": {"text": {"type": "string"}, "n": {"type": "integer", "minimum": 1}}}},
]}
KEYS = {"keys": [{"id": "agent", "sha256": hash_token(TOKEN), "scopes": ["submit", "read", "resume"]}]}


@pytest.fixture(scope="module")
def mesh_gateway(tmp_path_factory, store_location):
    tmp = tmp_path_factory.mktemp("mesh")
    postgres = store_location.startswith("postgresql://")
    mesh = Mesh(tmp, [{"name": "words", "handler": "proto_handlers.words", "resiliency": ONCE},
                      {"name": "review", "handler": "proto_handlers.review", "resiliency": ONCE},
                      {"name": "fan", "handler": "proto_handlers.fan", "resiliency": ONCE}],
                env={"ASYA_STATUS_DB": store_location} if postgres else None)
    (mesh.values_dir / "proto_handlers.py").write_text(HANDLERS)
    mesh.start()
    status_db = store_location if postgres else str(mesh.state / "status.sqlite3")
    gateway = GatewayProcess(tmp / "gw", status_db, mesh.transport_settings, tools=TOOLS, keys=KEYS)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        mesh.stop()


def ids_in(summary: dict) -> list[str]:
    return [summary["envelope_id"], *(i for b in summary.get("branches", []) for i in ids_in(b))]


async def test_mcp_call_streams_the_real_handlers_chunks_and_returns_its_result(mesh_gateway):
    messages: list[str] = []

    async def on_progress(progress, total, message):
        messages.append(message)

    async with mcp_connect(mesh_gateway) as client:
        result = await client.call_tool("shout", {"text": "one two three"}, progress_callback=on_progress)
    assert result.structured_content["result"] == {"text": "ONE TWO THREE"}
    assert [m for m in messages if m.startswith("{")] == ['{"token":"ONE"}', '{"token":"TWO"}', '{"token":"THREE"}']
    assert "running words" in messages


async def test_mcp_failing_handler_is_an_error_result_with_its_type_and_message(mesh_gateway):
    async with mcp_connect(mesh_gateway) as client:
        result = await client.call_tool("broken", {"text": "abc", "fail": True})
    assert result.is_error
    assert result.content[0].text == "ValueError: cannot shout 'abc'"


async def test_mcp_pause_in_a_real_handler_is_answered_through_elicitation(mesh_gateway):
    async def elicit(context, params):
        assert params.message == "Approve this text?"
        return types.ElicitResult(action="accept", content={"approved": True})

    async with mcp_connect(mesh_gateway, elicitation_callback=elicit) as client:
        result = await asyncio.wait_for(client.call_tool("review", {"text": "ship it"}), 90)
    assert result.structured_content["result"] == {"text": "SHIP IT", "approved": True}


async def test_fan_out_children_appear_once_in_both_faces(mesh_gateway):
    text = f"part {uuid.uuid4().hex[:6]}"
    async with mcp_connect(mesh_gateway) as client:
        result = await client.call_tool("fan", {"text": text, "n": 3})
    data = result.structured_content
    assert data["status"] == "succeeded" and not result.is_error
    ids = ids_in(data)
    assert len(ids) == len(set(ids)) == 3
    results = sorted(b["result"]["text"] for b in [data, *data.get("branches", [])])
    assert results == [f"{text.upper()} {i}" for i in range(3)]

    async with a2a_connect(mesh_gateway.url) as (a2a, _):
        events = await asyncio.wait_for(collect(a2a.send_message(message("fan", {"text": text, "n": 3}))), 90)
    assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    [artifact] = [e.artifact_update.artifact for e in events
                  if e.HasField("artifact_update") and e.artifact_update.artifact.artifact_id == "result"]
    summary = get_data_parts(artifact.parts)[0]
    ids = ids_in(summary)
    assert len(ids) == len(set(ids)) == 3
