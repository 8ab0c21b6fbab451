"""Fixtures for the hardening tests (issue 10): one dev mesh with hostile handlers, helpers to find records."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from asya_common import envelope as env
from tests.support.mesh import Mesh

HANDLERS = Path(__file__).resolve().parent / "handlers"
LIMIT = 65536  # ASYA_MAX_MESSAGE_BYTES of the mesh: small, so "over the broker's limit" is cheap to reach


def one_attempt(timeout: str = "20s") -> dict:
    return {"actorTimeout": timeout, "policies": {"default": {
        "maxAttempts": 1, "backoff": "constant", "initialInterval": "100ms", "maxInterval": "1s"}}}


HARDENING_ACTORS = [
    {"name": "echo", "handler": "hd_handlers.echo", "resiliency": one_attempt()},
    {"name": "grow", "handler": "hd_handlers.grow", "resiliency": one_attempt()},
    {"name": "fail-loud", "handler": "hd_handlers.fail_loud", "resiliency": one_attempt()},
    {"name": "dlq-router", "handler": "hd_handlers.reroute_to_dlq", "resiliency": one_attempt()},
    {"name": "exiter", "handler": "hd_handlers.exit_first_time", "resiliency": one_attempt()},
]


@pytest.fixture(scope="module")
def hmesh(tmp_path_factory):
    """A dev mesh on the embedded queue whose largest message is 64 KiB."""
    tmp = tmp_path_factory.mktemp("hmesh")
    running = Mesh(tmp, HARDENING_ACTORS, env={"ASYA_MAX_MESSAGE_BYTES": str(LIMIT)})
    for module in HANDLERS.glob("*.py"):
        shutil.copy(module, running.values_dir / module.name)
    yield running.start()
    running.stop()


def records_with_raw_body(mesh: Mesh) -> list[dict]:
    """Every final error-end envelope in the status store that keeps a raw body."""
    with sqlite3.connect(mesh.state / "status.sqlite3") as conn:
        rows = conn.execute("SELECT envelope FROM records WHERE envelope IS NOT NULL").fetchall()
    found = []
    for (text,) in rows:
        envelope = json.loads(text)
        if env.H_RAW_BODY in (envelope.get("headers") or {}):
            found.append(envelope)
    return found
