"""Messages held beyond the handler's concurrency wait in the sidecar: one call at a time, in order, and the
wait is not the handler's time (``ASYA_PREFETCH``, docs/configuration.md)."""

from __future__ import annotations

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
