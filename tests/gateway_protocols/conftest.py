"""Fixtures of the MCP and A2A tests: a real gateway process per module and backend, actors played step by step.

Each module runs twice: on a SQLite status store and on a PostgreSQL database (the session's server
from tests/support/postgres.py). The gateway is the real ``python -m asya_gateway`` on a free loopback
port with API keys and a tools config; the clients are the official SDKs' own (``mcp.Client``, the
``a2a`` client factory). Actors are played with :class:`tests.gateway.harness.StepActor` (the real
queue and the real store, written exactly as a sidecar writes them), so each test decides when a hop,
a FLY chunk or a pause happens; tests/gateway_protocols/test_mesh.py runs the same faces over a real
``asya dev`` mesh.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asya_common import envelope as env
from asya_common.transport import TransportSettings, create_transport
from asya_gateway.auth import hash_token
from tests.gateway.harness import GatewayProcess, StepActor, make_queues
from tests.support.postgres import _admin
from tests.support.require import require

TOKEN = "agent-token-0123456789abcdef"
OTHER = "other-token-0123456789abcdef"
KEYS = {"keys": [{"id": "agent", "sha256": hash_token(TOKEN), "scopes": ["submit", "read", "resume"]},
                 {"id": "other", "sha256": hash_token(OTHER), "scopes": ["submit", "read", "resume"]}]}
TEXT = {"type": "object", "required": ["text"], "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1}}}
REVIEW = {"type": "object", "required": ["approved"],
          "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}}}
TOOLS = {"tools": [
    {"name": "shout", "description": "Upper-case a text", "route": ["words"], "timeout": "60s", "inputSchema": TEXT},
    {"name": "review", "description": "A person approves the text, then it is stored", "route": ["review", "store"],
     "timeout": "60s", "inputSchema": TEXT},
    {"name": "slow", "description": "Like shout, with a short timeout", "route": ["words"], "timeout": "1s",
     "inputSchema": TEXT},
    {"name": "fragile", "description": "Stops when the caller goes away", "route": ["words"], "timeout": "60s",
     "cancelOnDisconnect": True, "inputSchema": TEXT},
]}
ACTORS = ("words", "review", "store")


@dataclass
class Gateway:
    """One running gateway and what tests need to drive it."""

    url: str
    store_location: str
    transport: TransportSettings
    process: GatewayProcess

    def actor(self, name: str) -> StepActor:
        return StepActor(self.store_location, self.transport, name)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_location(request, tmp_path_factory):
    """A status store per module and backend."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("store") / "status.sqlite3")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "psycopg not installed (pip install 'asya-common[postgres]')")
    server = request.getfixturevalue("postgres_server_url")
    name = f"gp_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    yield f"{server.rpartition('/')[0]}/{name}"
    _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def transport(tmp_path_factory) -> TransportSettings:
    settings = TransportSettings(sqlite_path=str(tmp_path_factory.mktemp("queues") / "queues.sqlite3"))
    make_queues(settings, *ACTORS)
    return settings


@pytest.fixture(scope="module")
def gateway(store_location, transport, tmp_path_factory):
    process = GatewayProcess(tmp_path_factory.mktemp("gateway"), store_location, transport, tools=TOOLS, keys=KEYS)
    process.start()
    yield Gateway(process.url, store_location, transport, process)
    process.stop()


async def take(actor: StepActor, envelope_id: str, timeout: float = 30) -> dict[str, Any]:
    """The envelope ``envelope_id`` from the actor's queue (others left by earlier tests are acked and dropped)."""
    while True:
        envelope = await asyncio.to_thread(actor.take, timeout)
        if envelope["id"] == envelope_id:
            return envelope


async def queue_depth(transport: TransportSettings, actor: str) -> int:
    async with create_transport(transport) as t:
        return (await t.depth(env.queue_name(actor, transport.queue_prefix))).total


def advanced(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope one hop further, as a sidecar forwards it."""
    out = env.copy_envelope(envelope)
    env.advance(out)
    return out
