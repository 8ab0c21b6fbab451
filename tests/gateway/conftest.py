"""Fixtures of the gateway tests: one gateway per module and backend (SQLite file, PostgreSQL database).

Every test that takes ``gateway`` runs twice: on a SQLite status store and on a PostgreSQL one (the
session's server from tests/support/postgres.py, a fresh database per module). The broker is the
embedded SQLite queue: the gateway publishes with the same Transport the sidecars use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from asya_common.transport import TransportSettings
from asya_gateway.auth import hash_token
from tests.gateway.harness import GatewayProcess, make_queues
from tests.support.postgres import _admin, postgres_server_url  # noqa: F401 - fixture re-exported

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789", "viewer": "viewer-token-0123456789",
          "root": "root-token-0123456789"}
SCOPES = {"alice": ["submit", "read", "resume"], "bob": ["submit", "read", "resume"], "viewer": ["read"],
          "root": ["admin"]}
KEYS = {"keys": [{"id": k, "sha256": hash_token(TOKENS[k]), "scopes": SCOPES[k]} for k in TOKENS]}
TOOLS = {"tools": [
    {"name": "echo", "description": "Echo a text", "route": ["echo"], "timeout": "30s",
     "inputSchema": {"type": "object", "required": ["text"], "additionalProperties": False,
                     "properties": {"text": {"type": "string", "maxLength": 100}, "n": {"type": "integer"}}}},
    {"name": "review", "description": "Draft, then a person reviews", "route": ["review", "publish"],
     "inputSchema": {"type": "object"}},
    {"name": "nowhere", "description": "Route to an actor without a queue", "route": ["missing-actor"]},
]}
ACTORS = ("echo", "review", "publish", "error-end")


@dataclass
class Backend:
    name: str
    location: str


def _pg_database(server_url: str) -> str:
    name = f"gw_{uuid.uuid4().hex[:12]}"
    _admin(server_url, f"CREATE DATABASE {name}")
    return f"{server_url.rpartition('/')[0]}/{name}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request, tmp_path_factory) -> Backend:
    """A status store location per backend, shared by the module's tests."""
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path_factory.mktemp("store") / "status.sqlite3"))
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        from tests.support.require import require
        require(False, "psycopg not installed (pip install 'asya-common[postgres]')")
    server = request.getfixturevalue("postgres_server_url")
    location = _pg_database(server)
    yield Backend("postgres", location)
    _admin(server, f"DROP DATABASE IF EXISTS {location.rpartition('/')[2]} WITH (FORCE)")


@pytest.fixture(scope="module")
def transport(tmp_path_factory) -> TransportSettings:
    """The embedded queue, with the actor queues created (the gateway never creates queues)."""
    settings = TransportSettings(sqlite_path=str(tmp_path_factory.mktemp("queues") / "queues.sqlite3"))
    make_queues(settings, *ACTORS)
    return settings


@pytest.fixture(scope="module")
def gateway(backend, transport, tmp_path_factory):
    """A gateway with API keys and tools over the module's store and queue."""
    tmp: Path = tmp_path_factory.mktemp("gateway")
    process = GatewayProcess(tmp, backend.location, transport, tools=TOOLS, keys=KEYS,
                             env={"ASYA_GATEWAY_KEEPALIVE": "0.3", "ASYA_GATEWAY_MAX_BODY_BYTES": "65536",
                                  "ASYA_GATEWAY_EXPIRE_INTERVAL": "0.2"})
    process.start()
    process.backend = backend
    process.transport = transport
    yield process
    process.stop()
