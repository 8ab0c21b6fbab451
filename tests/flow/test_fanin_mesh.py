"""Fan-in on a real mesh under kill -9 of the collector and redelivered children.

Many parents fan out at once; the fan-in's runtime (the collector) is killed with SIGKILL while
groups are being joined, and duplicate copies of children are delivered on purpose. Every parent
must continue exactly once with every child counted once, and a group whose child never arrives
must fail its parent into error-end naming the missing child.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from asya_common import envelope as env
from asya_crew.fanin import FanInStore
from tests.flow.test_property_mesh import run_batch, start_flow_mesh

HERE = Path(__file__).resolve().parent
PARENTS, CHUNKS = 30, 6


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    m = start_flow_mesh(tmp_path_factory.mktemp("fanin"), HERE / "fanin_flows.py", ["after", "slow-square"],
                        {"ASYA_FANIN_TIMEOUT": "45s"})
    yield m
    assert m.stop() == 0


def _wait_new_pid(mesh, actor: str, role: str, old: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while mesh.pids().get(actor, {}).get(role) in (None, old):
        assert time.monotonic() < deadline, f"{actor} {role} was not restarted"
        time.sleep(0.05)


def test_kill_9_of_the_collector_and_redelivery_give_one_continuation_per_parent(mesh):
    jobs = [("fan", {"key": f"k{i}", "chunks": [i + j for j in range(CHUNKS)]}) for i in range(PARENTS)]
    routes = json.loads((mesh.state / "flows" / "fan.routes.json").read_text())["entry"]["route"]
    assert routes == ["fan-router-1"]
    results: dict = {}
    runner = threading.Thread(target=lambda: results.update(run_batch(mesh, jobs, timeout=600)))
    runner.start()
    kills = 0
    deadline = time.monotonic() + 120
    while runner.is_alive() and kills < 5 and time.monotonic() < deadline:
        if mesh.pids().get("fan-in", {}).get("runtime") and "FanInPending" in mesh.log("fan-in", "sidecar"):
            old = mesh.kill("fan-in", "runtime")
            kills += 1
            _wait_new_pid(mesh, "fan-in", "runtime", old)
            time.sleep(0.3)
        else:
            time.sleep(0.05)
    runner.join()
    assert kills >= 1, "the collector was never killed while groups were pending"
    ids = list(results)
    # redelivery: every child of the first five parents arrives again, with a different result that must be ignored
    dupes = []
    for envelope_id, (_, payload) in zip(ids[:5], jobs[:5]):
        for index, c in enumerate(payload["chunks"]):
            dupe = env.make_envelope(["fan-in"], -999, envelope_id=f"{envelope_id}-{index + 1}")
            dupe["parent_id"] = envelope_id
            dupe["headers"]["x-asya-fanin"] = {"group": f"{envelope_id}/fan-router-1/1", "role": "child",
                                               "index": index, "count": CHUNKS}
            dupes.append(env.dumps(dupe))
    mesh.send_bodies("fan-in", dupes)
    store = FanInStore(str(mesh.state / "status.sqlite3"))
    _drain(mesh, "fan-in")
    for envelope_id, (_, payload) in zip(ids, jobs):
        status, result = results[envelope_id]
        assert status == "succeeded", (envelope_id, result)
        assert result["squares"] == [c * c for c in payload["chunks"]] and result["after"] is True
        assert store.counts(f"{envelope_id}/fan-router-1/1") == (CHUNKS, CHUNKS)
        assert mesh.store.tree(envelope_id)["result"]["squares"] == result["squares"]  # dupes changed nothing
    continuations = (mesh.tmp / "after.log").read_text().split()
    assert sorted(continuations) == sorted(p["key"] for _, p in jobs), "a parent continued twice or never"
    print(f"\nfan-in: {PARENTS} parents x {CHUNKS} children, collector killed {kills} times, "
          f"{len(dupes)} children redelivered; {len(continuations)} continuations")


def _drain(mesh, actor: str, timeout: float = 60) -> None:
    """Waits until the actor's queue is empty (the redelivered duplicates have been processed)."""
    import asyncio

    from asya_common.transport import create_transport

    async def depth() -> int:
        async with create_transport(mesh.transport_settings) as transport:
            d = await transport.depth(env.queue_name(actor, mesh.transport_settings.queue_prefix))
            return d.ready + d.in_flight + d.delayed

    deadline = time.monotonic() + timeout
    while asyncio.run(depth()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not asyncio.run(depth()), f"{actor} queue did not drain"


def test_a_missing_child_fails_the_parent_after_the_timeout_naming_it(mesh):
    results = run_batch(mesh, [("fan", {"key": "timeout", "chunks": [2, -1, 3]})], timeout=120)
    ((envelope_id, (status, error_type)),) = results.items()
    assert (status, error_type) == ("failed", "FanInTimeout")
    error = mesh.store.tree(envelope_id)["error"]
    assert f"{envelope_id}-2" in error["message"] and "1 of 3" in error["message"]
    assert "timeout" not in (mesh.tmp / "after.log").read_text().split()
