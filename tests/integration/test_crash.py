"""Nothing lost: kill -9 of a sidecar or a runtime in the middle of 1,000 envelopes (on the embedded queue and on
RabbitMQ, where acks of one loop turn leave together), and SIGTERM drains."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from dataclasses import replace

import pytest

from asya_common import envelope as env
from tests.integration.conftest import policy
from tests.support.mesh import Mesh

pytestmark = pytest.mark.slow


def _processed(log_path) -> list[int]:
    return [int(x) for x in log_path.read_text().split()] if log_path.exists() else []


def _final_count(mesh: Mesh, ids: list[str]) -> dict[str, int]:
    rows = mesh.store._conn.execute("SELECT status, COUNT(*) FROM records WHERE status IN ('succeeded','failed') "
                                    "GROUP BY status").fetchall()
    return dict(rows)


@pytest.fixture(params=["sqlite", "rabbitmq"])
def transport(request):
    """The mesh's queues: the embedded default (None), or a real RabbitMQ with a prefix of its own."""
    if request.param == "sqlite":
        return None
    return replace(request.getfixturevalue("rabbitmq_settings"), queue_prefix=f"crash{uuid.uuid4().hex[:8]}-")


@pytest.mark.parametrize("victim", [("relay-a", "sidecar"), ("relay-b", "runtime")])
def test_kill_9_in_the_middle_of_1000_envelopes_loses_nothing(tmp_path, victim, transport):
    actors = [{"name": "relay-a", "handler": "mesh_handlers.count_and_echo", "concurrency": 4,
               "resiliency": policy(max_attempts=3, initial="100ms")},
              {"name": "relay-b", "handler": "mesh_handlers.count_and_echo", "concurrency": 4,
               "resiliency": policy(max_attempts=3, initial="100ms")}]
    mesh = Mesh(tmp_path, actors, env={"ASYA_LEASE_SECONDS": "2"}, transport=transport).start(timeout=120)
    try:
        log = tmp_path / "calls.log"
        envelopes = [env.make_envelope(["relay-a", "relay-b"], {"n": i, "log": str(log)}) for i in range(1000)]
        for e in envelopes:
            mesh.store.mark_pending(e["id"])
        mesh.send_bodies("relay-a", [env.dumps(e) for e in envelopes])
        deadline = time.monotonic() + 120
        while len(_processed(log)) < 600 and time.monotonic() < deadline:  # both hops under way
            time.sleep(0.02)
        killed = mesh.kill(*victim)
        deadline = time.monotonic() + 180
        while sum(_final_count(mesh, []).values()) < 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        finals = _final_count(mesh, [])
        assert finals.get("succeeded", 0) + finals.get("failed", 0) == 1000, finals
        assert finals.get("failed", 0) == 0  # a crash costs at most one attempt of 3
        calls = _processed(log)
        assert set(calls) == set(range(1000))
        duplicates = len(calls) - 2000
        print(f"\nkilled {victim[0]} {victim[1]} (pid {killed}); {len(calls)} handler calls for 2000 hops, "
              f"{duplicates} duplicates")
        assert mesh.pids()[victim[0]][victim[1]] != killed  # the supervisor restarted it
    finally:
        mesh.stop()


@pytest.mark.parametrize("grace, sleep, calls, log_line", [
    ("10s", 2, [1], "draining in-flight messages"),  # finishes within the grace period: done once
    ("500ms", 3, [1, 1], "returned unfinished messages to the queue"),  # outlives it: returned, redone
])
def test_sigterm_finishes_or_returns_in_flight_work(tmp_path, grace, sleep, calls, log_line):
    actors = [{"name": "slow", "handler": "mesh_handlers.count_and_echo", "resiliency": policy(max_attempts=1)}]
    mesh = Mesh(tmp_path, actors, env={"ASYA_SHUTDOWN_GRACE": grace}).start()
    try:
        log = tmp_path / "calls.log"
        sent = mesh.send(["slow"], {"n": 1, "log": str(log), "sleep": sleep})
        while not _processed(log):
            time.sleep(0.02)
        os.kill(mesh.pids()["slow"]["sidecar"], signal.SIGTERM)
        record = mesh.wait_final(sent["id"], timeout=60)
        assert record["status"] == "succeeded"  # either way, nothing is lost
        assert _processed(log) == calls
        assert re.search(log_line, mesh.log("slow", "sidecar"))
    finally:
        mesh.stop()
