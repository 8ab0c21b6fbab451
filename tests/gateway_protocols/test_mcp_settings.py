"""MCP endpoint options: host checks behind a Kubernetes Service, and stateless 2025-era sessions.

Runs on SQLite only: these are HTTP-level behaviours of the MCP endpoint, not of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from asya_common.transport import TransportSettings
from tests.gateway.harness import GatewayProcess, make_queues
from tests.gateway_protocols.conftest import ACTORS, KEYS, REVIEW, TOKEN, TOOLS, advanced


@pytest.fixture(scope="module")
def k8s_gateway(tmp_path_factory):
    """A gateway that accepts the Service's host name and serves 2025-era MCP clients without sessions."""
    tmp = tmp_path_factory.mktemp("k8s")
    transport = TransportSettings(sqlite_path=str(tmp / "queues.sqlite3"))
    make_queues(transport, *ACTORS)
    process = GatewayProcess(tmp / "gw", str(tmp / "status.sqlite3"), transport, tools=TOOLS, keys=KEYS,
                             env={"ASYA_GATEWAY_ALLOWED_HOSTS": "asya-gateway:*,asya-gateway.asya.svc:*,127.0.0.1:*",
                                  "ASYA_GATEWAY_MCP_STATELESS": "true"})
    process.start()
    process.transport, process.store_location = transport, str(tmp / "status.sqlite3")
    yield process
    process.stop()


@contextlib.asynccontextmanager
async def connect(url: str, host: str | None = None, **options):
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Host": host} if host else {})}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http), **options) as client:
            yield client


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_service_host_name_is_accepted_and_others_are_refused(k8s_gateway, mode):
    port = k8s_gateway.url.rsplit(":", 1)[1]
    async with connect(k8s_gateway.url, f"asya-gateway.asya.svc:{port}", mode=mode) as client:
        assert "shout" in [t.name for t in (await client.list_tools()).tools]
    with pytest.raises(Exception):
        async with connect(k8s_gateway.url, f"evil.example:{port}", mode=mode) as client:
            await client.list_tools()
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "probe", "version": "1"}}}
    for host, status in ((f"evil.example:{port}", 421), (f"asya-gateway:{port}", 200)):
        async with httpx2.AsyncClient() as http:
            response = await http.post(f"{k8s_gateway.url}/mcp", json=initialize, headers={
                "Authorization": f"Bearer {TOKEN}", "Host": host, "Accept": "application/json, text/event-stream"})
        assert response.status_code == status, (host, response.text)


async def test_stateless_2025_sessions_get_a_paused_result_instead_of_elicitation(k8s_gateway):
    from tests.gateway.harness import StepActor

    text = f"hello {uuid.uuid4().hex[:8]}"
    asked = []

    async def elicit(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"approved": True})

    review = StepActor(k8s_gateway.store_location, k8s_gateway.transport, "review")
    try:
        async with connect(k8s_gateway.url, mode="legacy", elicitation_callback=elicit) as client:
            call = asyncio.create_task(client.call_tool("review", {"text": text}))
            envelope = await asyncio.to_thread(review.take, 30)
            await asyncio.to_thread(review.store.park, advanced(envelope), {"prompt": "Approve?", "schema": REVIEW},
                                    "review")
            result = await asyncio.wait_for(call, 60)
    finally:
        review.close()
    assert asked == []
    assert result.structured_content["status"] == "paused"
    assert result.structured_content["prompt"] == "Approve?"
