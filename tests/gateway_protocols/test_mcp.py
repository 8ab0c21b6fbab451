"""MCP face over real HTTP with the official SDK's own client (``mcp.Client`` + Streamable HTTP).

Each test runs on a SQLite and a PostgreSQL status store (conftest.py). ``mode='auto'`` negotiates
protocol 2026-07-28 (pauses come back as ``InputRequiredResult`` the client answers with its
elicitation callback); ``mode='legacy'`` uses the 2025-11-25 handshake (the server sends
``elicitation/create`` on the call's stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.gateway_protocols.conftest import OTHER, REVIEW, TEXT, TOKEN, advanced, queue_depth, take


@contextlib.asynccontextmanager
async def connect(gateway, token: str | None = TOKEN, **options: Any):
    """An ``mcp.Client`` on the gateway's /mcp with the API key as bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(f"{gateway.url}/mcp", http_client=http), **options) as client:
            yield client


def unique_text() -> str:
    return f"hello {uuid.uuid4().hex[:8]}"


async def take_text(actor, text: str) -> dict[str, Any]:
    """The envelope whose payload carries ``text`` from the actor's queue."""
    while True:
        envelope = await asyncio.to_thread(actor.take, 30)
        if envelope["payload"].get("text") == text:
            return envelope


async def test_tools_list_gives_each_configured_tool_its_own_schema_and_the_continuation_tools(gateway):
    async with connect(gateway) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["shout"].input_schema == TEXT
    assert tools["shout"].description == "Upper-case a text"
    assert {"review", "slow", "fragile", "asya_status", "asya_resume", "asya_cancel"} <= set(tools)
    assert tools["asya_resume"].input_schema["required"] == ["envelope_id", "input"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_call_reports_each_hop_and_chunk_as_progress_and_returns_structured_content(gateway, mode):
    text = unique_text()
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    actor = gateway.actor("words")
    try:
        async with connect(gateway, mode=mode) as client:
            call = asyncio.create_task(client.call_tool("shout", {"text": text}, progress_callback=on_progress))
            envelope = await take_text(actor, text)
            await asyncio.to_thread(actor.running, envelope)
            await asyncio.to_thread(actor.fly, envelope, {"token": "HELLO"}, {"token": "WORLD"}, {"token": "!"})
            await asyncio.to_thread(actor.finish, envelope, {"text": text.upper()})
            result = await asyncio.wait_for(call, 60)
    finally:
        actor.close()
    assert not result.is_error
    assert result.structured_content == {"envelope_id": envelope["id"], "status": "succeeded",
                                         "result": {"text": text.upper()}}
    messages = [m for _, m in seen]
    assert messages[:1] == ["running words"]
    assert [m for m in messages if m.startswith("{")] == ['{"token":"HELLO"}', '{"token":"WORLD"}', '{"token":"!"}']
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)


async def test_failed_envelope_is_an_error_result_with_type_and_message(gateway):
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with connect(gateway) as client:
            call = asyncio.create_task(client.call_tool("shout", {"text": text}))
            envelope = await take_text(actor, text)
            done = advanced(envelope)
            await asyncio.to_thread(actor.store.record_final, done, "failed", actor="words",
                                    error={"actor": "words", "type": "ValueError", "message": "no vowels here",
                                           "attempts": []})
            result = await asyncio.wait_for(call, 60)
    finally:
        actor.close()
    assert result.is_error
    assert result.content[0].text == "ValueError: no vowels here"
    assert result.structured_content["error"] == {"type": "ValueError", "message": "no vowels here"}
    assert result.structured_content["status"] == "failed"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'asya_gateway_protocol_calls_total{face="mcp",operation="tools/call",outcome="failed"}' in metrics


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_pause_is_answered_through_elicitation_and_the_call_completes(gateway, mode):
    text = unique_text()
    asked: list[types.ElicitRequestFormParams] = []

    async def elicit(context, params):
        asked.append(params)
        if len(asked) == 1:  # a first answer without the required field is refused and asked again
            return types.ElicitResult(action="accept", content={"note": "fine"})
        return types.ElicitResult(action="accept", content={"approved": True, "note": "fine"})

    review, store = gateway.actor("review"), gateway.actor("store")
    try:
        async with connect(gateway, mode=mode, elicitation_callback=elicit) as client:
            call = asyncio.create_task(client.call_tool("review", {"text": text}))
            envelope = await take_text(review, text)
            await asyncio.to_thread(review.running, envelope)
            await asyncio.to_thread(review.store.park, advanced(envelope),
                                    {"prompt": "Approve this text?", "schema": REVIEW}, "review")
            resumed = await take(store, envelope["id"])
            assert resumed["payload"] == {"text": text, "approved": True, "note": "fine"}
            await asyncio.to_thread(store.running, resumed)
            await asyncio.to_thread(store.finish, resumed, {"stored": text})
            result = await asyncio.wait_for(call, 60)
    finally:
        review.close()
        store.close()
    assert [p.requested_schema for p in asked] == [REVIEW, REVIEW]
    assert asked[0].message == "Approve this text?"
    assert asked[1].message.startswith("Approve this text? (last answer refused: ")
    assert "'approved' is a required property" in asked[1].message
    assert not result.is_error
    assert result.structured_content["result"] == {"stored": text}


async def test_without_elicitation_a_pause_answers_paused_and_asya_resume_finishes_it(gateway):
    text = unique_text()
    review, store = gateway.actor("review"), gateway.actor("store")
    try:
        async with connect(gateway) as client:
            call = asyncio.create_task(client.call_tool("review", {"text": text}))
            envelope = await take_text(review, text)
            await asyncio.to_thread(review.store.park, advanced(envelope),
                                    {"prompt": "Approve this text?", "schema": REVIEW}, "review")
            paused = await asyncio.wait_for(call, 60)
            assert paused.structured_content == {"status": "paused", "envelope_id": envelope["id"],
                                                 "paused_envelope_id": envelope["id"],
                                                 "prompt": "Approve this text?", "schema": REVIEW}
            refused = await client.call_tool("asya_resume", {"envelope_id": envelope["id"], "input": {"approved": 1}})
            assert refused.is_error and refused.structured_content["error"]["code"] == "invalid_input"
            resume = asyncio.create_task(client.call_tool(
                "asya_resume", {"envelope_id": envelope["id"], "input": {"approved": False}, "wait": 30}))
            resumed = await take(store, envelope["id"])
            assert resumed["payload"]["approved"] is False
            await asyncio.to_thread(store.finish, resumed, {"stored": False})
            result = await asyncio.wait_for(resume, 60)
    finally:
        review.close()
        store.close()
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["result"] == {"stored": False}


async def test_call_outliving_its_timeout_answers_running_and_finishes_through_asya_status(gateway):
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with connect(gateway) as client:
            running = await client.call_tool("slow", {"text": text})
            envelope = await take_text(actor, text)
            assert running.structured_content == {
                "status": "running", "envelope_id": envelope["id"],
                "stream_url": f"{gateway.url}/envelopes/{envelope['id']}/stream"}
            status = await client.call_tool("asya_status", {"envelope_id": envelope["id"]})
            assert status.structured_content == {"envelope_id": envelope["id"], "status": "pending",
                                                 "stream_url": f"{gateway.url}/envelopes/{envelope['id']}/stream"}
            waiting = asyncio.create_task(client.call_tool("asya_status", {"envelope_id": envelope["id"], "wait": 30}))
            await asyncio.to_thread(actor.running, envelope)
            await asyncio.to_thread(actor.finish, envelope, {"text": text.upper()})
            final = await asyncio.wait_for(waiting, 60)
    finally:
        actor.close()
    assert final.structured_content == {"envelope_id": envelope["id"], "status": "succeeded",
                                        "result": {"text": text.upper()}}


async def test_client_cancellation_stops_waiting_and_cancels_only_when_the_tool_says_so(gateway):
    actor = gateway.actor("words")
    try:
        async with connect(gateway) as client:
            ids = {}
            for tool in ("shout", "fragile"):
                text = unique_text()
                call = asyncio.create_task(client.call_tool(tool, {"text": text}))
                ids[tool] = (await take_text(actor, text))["id"]
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call

            async def status(envelope_id: str) -> str:
                result = await client.call_tool("asya_status", {"envelope_id": envelope_id})
                return result.structured_content["status"]

            for _ in range(300):
                if await status(ids["fragile"]) == "canceled":
                    break
                await asyncio.sleep(0.1)
            assert await status(ids["fragile"]) == "canceled"
            assert await status(ids["shout"]) == "pending"
            canceled = await client.call_tool("asya_cancel", {"envelope_id": ids["shout"]})
            assert not canceled.is_error and canceled.structured_content["status"] == "canceled"
            again = await client.call_tool("asya_cancel", {"envelope_id": ids["shout"]})
            assert again.is_error and again.structured_content["error"]["code"] == "conflict"
    finally:
        actor.close()


async def test_schema_breaking_arguments_are_refused_with_the_schema_error_and_nothing_is_published(gateway):
    before = await queue_depth(gateway.transport, "words")
    async with connect(gateway) as client:
        result = await client.call_tool("shout", {"text": 5})
        unknown = await client.call_tool("shout", {"text": "x", "extra": 1})
    assert result.is_error
    assert result.structured_content["error"]["code"] == "invalid_arguments"
    assert result.structured_content["error"]["path"] == "$.text"
    assert "5 is not of type 'string'" in result.content[0].text
    assert unknown.is_error and "extra" in unknown.content[0].text
    assert await queue_depth(gateway.transport, "words") == before


async def test_missing_or_unknown_key_is_refused_and_records_stay_private(gateway):
    response = httpx.post(f"{gateway.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(Exception):
        async with connect(gateway, token="not-a-key") as client:
            await client.list_tools()
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with connect(gateway) as client:
            running = await client.call_tool("slow", {"text": text})
        envelope_id = running.structured_content["envelope_id"]
        async with connect(gateway, token=OTHER) as other:
            hidden = await other.call_tool("asya_status", {"envelope_id": envelope_id})
        assert hidden.is_error and hidden.structured_content["error"]["code"] == "not_found"
        await take_text(actor, text)
    finally:
        actor.close()
