"""A2A face over real HTTP with the official ``a2a-sdk`` client (card resolver + client factory, JSON-RPC).

Each test runs on a SQLite and a PostgreSQL status store (conftest.py). The last test starts a second
gateway replica over the same PostgreSQL database and reads, from it, a task started on the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError

from tests.gateway.harness import GatewayProcess
from tests.gateway_protocols.conftest import KEYS, OTHER, REVIEW, TOKEN, TOOLS, advanced, queue_depth, take


@contextlib.asynccontextmanager
async def connect(url: str, token: str = TOKEN, streaming: bool = True):
    """The SDK client for the gateway's card, with the API key as bearer token; yields (client, card)."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
        yield client, card


def message(skill: str | None, value: Any = None, *, task_id: str = "",
            text: str | None = None) -> pb.SendMessageRequest:
    parts = [new_text_part(text)] if text is not None else [new_data_part(value)]
    msg = pb.Message(message_id=uuid.uuid4().hex, role=pb.ROLE_USER, parts=parts, task_id=task_id)
    if skill:
        msg.metadata.update({"skill": skill})
    return pb.SendMessageRequest(message=msg)


def unique_text() -> str:
    return f"hello {uuid.uuid4().hex[:8]}"


async def take_text(actor, text: str) -> dict[str, Any]:
    while True:
        envelope = await asyncio.to_thread(actor.take, 30)
        if envelope["payload"].get("text") == text:
            return envelope


async def collect(stream) -> list[pb.StreamResponse]:
    return [event async for event in stream]


async def test_card_lists_one_skill_per_tool_and_the_bearer_scheme(gateway):
    async with connect(gateway.url) as (_, card):
        pass
    assert [s.id for s in card.skills] == sorted(t["name"] for t in TOOLS["tools"])
    assert card.capabilities.streaming
    assert card.supported_interfaces[0].url == f"{gateway.url}/a2a"
    assert card.supported_interfaces[0].protocol_binding == "JSONRPC"
    scheme = card.security_schemes["asyaApiKey"].http_auth_security_scheme
    assert scheme.scheme == "bearer"
    assert "asyaApiKey" in card.security_requirements[0].schemes
    refused = httpx.post(f"{gateway.url}/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}},
                         headers={"A2A-Version": "1.0"})
    assert refused.status_code == 401


async def test_streamed_task_sends_a_status_per_hop_chunks_as_one_growing_artifact_and_the_result(gateway):
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with connect(gateway.url) as (client, _):
            stream = asyncio.create_task(collect(client.send_message(message("shout", {"text": text}))))
            envelope = await take_text(actor, text)
            await asyncio.to_thread(actor.running, envelope)
            await asyncio.to_thread(actor.fly, envelope, {"token": "HELLO"}, {"token": "WORLD"})
            await asyncio.to_thread(actor.finish, envelope, {"text": text.upper()})
            events = await asyncio.wait_for(stream, 60)
            task = await client.get_task(pb.GetTaskRequest(id=envelope["id"]))
    finally:
        actor.close()
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and events[0].task.id == envelope["id"]
    working = [e.status_update for e in events if e.HasField("status_update")
               and e.status_update.status.state == pb.TASK_STATE_WORKING]
    assert [get_text_parts(u.status.message.parts) for u in working] == [["running words"]]
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")
              and e.artifact_update.artifact.artifact_id == "stream"]
    assert [get_data_parts(c.artifact.parts) for c in chunks] == [[{"token": "HELLO"}], [{"token": "WORLD"}]]
    assert [c.append for c in chunks] == [False, True]
    result = [e.artifact_update for e in events if e.HasField("artifact_update")
              and e.artifact_update.artifact.artifact_id == "result"]
    assert get_data_parts(result[0].artifact.parts)[0]["result"] == {"text": text.upper()}
    assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    assert task.status.state == pb.TASK_STATE_COMPLETED
    assert {a.artifact_id: len(a.parts) for a in task.artifacts} == {"stream": 2, "result": 1}


async def test_input_required_then_a_message_with_the_task_id_resumes_it(gateway):
    text = unique_text()
    review, store = gateway.actor("review"), gateway.actor("store")
    try:
        async with connect(gateway.url) as (client, _):
            first = asyncio.create_task(collect(client.send_message(message("review", {"text": text}))))
            envelope = await take_text(review, text)
            await asyncio.to_thread(review.running, envelope)
            await asyncio.to_thread(review.store.park, advanced(envelope),
                                    {"prompt": "Approve this text?", "schema": REVIEW}, "review")
            events = await asyncio.wait_for(first, 60)
            asking = events[-1].status_update.status
            assert asking.state == pb.TASK_STATE_INPUT_REQUIRED
            assert get_text_parts(asking.message.parts) == ["Approve this text?"]
            assert get_data_parts(asking.message.parts)[0]["schema"] == REVIEW
            listed = await client.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_INPUT_REQUIRED))
            assert envelope["id"] in [t.id for t in listed.tasks]

            with pytest.raises(InvalidParamsError, match="approved"):
                await collect(client.send_message(message(None, {"approved": "yes"}, task_id=envelope["id"])))
            second = asyncio.create_task(collect(client.send_message(
                message(None, {"approved": True}, task_id=envelope["id"]))))
            resumed = await take(store, envelope["id"])
            assert resumed["payload"] == {"text": text, "approved": True}
            await asyncio.to_thread(store.running, resumed)
            await asyncio.to_thread(store.finish, resumed, {"stored": text})
            events = await asyncio.wait_for(second, 60)
            done = await client.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_COMPLETED))
    finally:
        review.close()
        store.close()
    assert events[0].task.id == envelope["id"]
    assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    assert envelope["id"] in [t.id for t in done.tasks]


async def test_blocking_send_cancel_and_list_by_state(gateway):
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with connect(gateway.url, streaming=False) as (client, _):
            [reply] = await collect(client.send_message(message("slow", {"text": text})))
            task = reply.task
            assert task.status.state == pb.TASK_STATE_SUBMITTED  # the 1 s tool timeout passed; nothing canceled
            envelope = await take_text(actor, text)
            assert envelope["id"] == task.id
            working = await client.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_SUBMITTED))
            assert task.id in [t.id for t in working.tasks]
            canceled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
            assert canceled.status.state == pb.TASK_STATE_CANCELED
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(pb.CancelTaskRequest(id=task.id))
            listed = await client.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_CANCELED))
            assert task.id in [t.id for t in listed.tasks]
            assert task.id not in [t.id for t in (await client.list_tasks(
                pb.ListTasksRequest(status=pb.TASK_STATE_SUBMITTED))).tasks]
        async with connect(gateway.url, token=OTHER) as (other, _):
            with pytest.raises(TaskNotFoundError):
                await other.get_task(pb.GetTaskRequest(id=task.id))
    finally:
        actor.close()


async def test_schema_breaking_arguments_are_refused_with_the_schema_error_and_nothing_is_published(gateway):
    before = await queue_depth(gateway.transport, "words")
    async with connect(gateway.url) as (client, _):
        with pytest.raises(InvalidParamsError, match=r"\$\.text.*not of type 'string'"):
            await collect(client.send_message(message("shout", {"text": 5})))
        with pytest.raises(InvalidParamsError, match="skill"):
            await collect(client.send_message(message(None, {"text": "x"})))
    assert await queue_depth(gateway.transport, "words") == before


async def test_resubscribe_and_a_second_replica_serve_a_task_started_on_the_first(gateway, tmp_path):
    text = unique_text()
    actor = gateway.actor("words")
    replica = GatewayProcess(tmp_path / "replica", gateway.store_location, gateway.transport, tools=TOOLS,
                             keys=KEYS, name="replica").start()
    try:
        async with connect(gateway.url, streaming=False) as (client, _):
            [reply] = await collect(client.send_message(message("slow", {"text": text})))
        envelope = await take_text(actor, text)
        await asyncio.to_thread(actor.running, envelope)
        await asyncio.to_thread(actor.fly, envelope, {"token": "A"})
        async with connect(replica.url) as (client, _):
            seen = await client.get_task(pb.GetTaskRequest(id=reply.task.id))
            assert seen.status.state == pb.TASK_STATE_WORKING
            assert [get_data_parts(a.parts) for a in seen.artifacts] == [[{"token": "A"}]]
            updates = client.subscribe(pb.SubscribeToTaskRequest(id=reply.task.id)).__aiter__()
            events = [await asyncio.wait_for(anext(updates), 60)]  # subscribed: the Task comes first
            await asyncio.to_thread(actor.fly, envelope, {"token": "B"})
            await asyncio.to_thread(actor.finish, envelope, {"text": "AB"})
            events += await asyncio.wait_for(collect(updates), 60)
    finally:
        actor.close()
        replica.stop()
    assert events[0].task.id == reply.task.id
    snapshot = [p for a in events[0].task.artifacts if a.artifact_id == "stream" for p in get_data_parts(a.parts)]
    live = [p for e in events if e.HasField("artifact_update") and e.artifact_update.artifact.artifact_id == "stream"
            for p in get_data_parts(e.artifact_update.artifact.parts)]
    assert snapshot + live == [{"token": "A"}, {"token": "B"}]  # no chunk lost, none repeated
    assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED


async def test_a_protocol_0_3_client_sends_streams_and_reads_a_task(gateway):
    text = unique_text()
    actor = gateway.actor("words")
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            card = await A2ACardResolver(http, gateway.url).get_agent_card()
            assert [i.protocol_version for i in card.supported_interfaces] == ["1.0", "0.3"]
            del card.supported_interfaces[0]  # talk 0.3 only, as an older agent does
            client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
            assert "Compat" in type(client._transport).__name__  # the SDK's 0.3 wire (message/stream, tasks/get)
            stream = asyncio.create_task(collect(client.send_message(message("shout", {"text": text}))))
            envelope = await take_text(actor, text)
            await asyncio.to_thread(actor.running, envelope)
            await asyncio.to_thread(actor.fly, envelope, {"token": "HELLO"})
            await asyncio.to_thread(actor.finish, envelope, {"text": text.upper()})
            events = await asyncio.wait_for(stream, 60)
            task = await client.get_task(pb.GetTaskRequest(id=envelope["id"]))
    finally:
        actor.close()
    assert events[-1].status_update.status.state == pb.TASK_STATE_COMPLETED
    assert task.status.state == pb.TASK_STATE_COMPLETED
    assert [a.artifact_id for a in task.artifacts] == ["stream", "result"]
