"""Messages held beyond the handler's concurrency wait in the sidecar: one call at a time, in order, and the
wait is not the handler's time (``ASYA_PREFETCH``, docs/configuration.md)."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.integration.conftest import policy
from tests.support.mesh import Mesh

pytestmark = pytest.mark.slow


def test_held_messages_queue_before_the_handler_without_spending_its_timeout(tmp_path):
    # concurrency 1, eight messages held: each call takes 0.6 s and the timeout is 1.5 s, so the last
    # message waits about 4 s in the sidecar. Counted as handler time, it would fail with ActorTimeout.
    actors = [{"name": "one-at-a-time", "handler": "mesh_handlers.async_sleepy", "concurrency": 1, "prefetch": 8,
               "resiliency": policy(max_attempts=1, timeout="1500ms")}]
    mesh = Mesh(tmp_path, actors).start()
    try:
        sent = [mesh.send(["one-at-a-time"], {"sleep": 0.6, "i": i}) for i in range(8)]
        records = [mesh.wait_final(e["id"], timeout=60) for e in sent]
        assert [r["status"] for r in records] == ["succeeded"] * 8, records
        assert {r["result"]["max_concurrent_seen"] for r in records} == {1}  # never two calls at once
    finally:
        mesh.stop()


def test_a_prefetch_below_the_concurrency_is_refused_by_name(tmp_path):
    actors = [{"name": "bad-prefetch", "handler": "mesh_handlers.echo", "concurrency": 4, "prefetch": 2}]
    mesh = Mesh(tmp_path, actors)
    with pytest.raises(Exception) as failed:
        mesh.start(timeout=30)
    mesh.stop()
    assert "ASYA_PREFETCH must be 0 (automatic) or >= ASYA_CONCURRENCY=4, got 2" in str(failed.value) + mesh.output()


def test_a_sync_handler_at_concurrency_1_runs_held_messages_one_at_a_time_in_arrival_order(tmp_path):
    # The held messages are sent to the runtime at once and wait there: the handler still sees one call at a
    # time, in the order the messages arrived, and each call's timeout starts when its turn comes.
    actors = [{"name": "in-order", "handler": "mesh_handlers.sync_sleepy", "concurrency": 1, "prefetch": 8,
               "resiliency": policy(max_attempts=1, timeout="1500ms")}]
    mesh = Mesh(tmp_path, actors).start()
    try:
        sent = [mesh.send(["in-order"], {"sleep": 0.6, "i": i}) for i in range(8)]
        records = [mesh.wait_final(e["id"], timeout=60) for e in sent]
        assert [r["status"] for r in records] == ["succeeded"] * 8, records
        assert {r["result"]["max_concurrent_seen"] for r in records} == {1}
        assert records[-1]["result"]["started"] == list(range(8))
    finally:
        mesh.stop()


def test_calls_waiting_behind_a_timed_out_call_run_in_the_new_runtime_without_a_redelivery(tmp_path):
    # The first call hangs past actorTimeout, so the sidecar restarts the runtime. The four calls that were
    # waiting in it never started: they are sent to the new runtime, not handed back to the queue.
    actors = [{"name": "behind", "handler": "mesh_handlers.sync_sleepy", "concurrency": 1, "prefetch": 8,
               "resiliency": policy(max_attempts=1, timeout="1s")}]
    mesh = Mesh(tmp_path, actors).start()
    try:
        first_runtime = mesh.pids()["behind"]["runtime"]
        stuck = mesh.send(["behind"], {"sleep": 30, "i": 0})
        waiting = [mesh.send(["behind"], {"sleep": 0, "i": i}) for i in range(1, 5)]
        failed = mesh.wait_final(stuck["id"], timeout=60)
        assert (failed["status"], failed["error"]["type"]) == ("failed", "ActorTimeout"), failed
        records = [mesh.wait_final(e["id"], timeout=60) for e in waiting]
        assert [r["status"] for r in records] == ["succeeded"] * 4, records
        assert {r["result"]["pid"] for r in records} != {first_runtime}
        with urllib.request.urlopen(f"http://127.0.0.1:{mesh.metrics_port('behind')}/metrics", timeout=5) as page:
            metrics = page.read().decode()
        returned = re.search(r'asya_messages_processed_total\{actor="behind",outcome="returned"\} (\d+)', metrics)
        assert returned is None or float(returned.group(1)) == 0
    finally:
        mesh.stop()

