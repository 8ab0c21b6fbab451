"""A message that arrives while its runtime is restarting waits for it: the restart is not the handler's time.

Before: the wait for the runtime socket ran inside actorTimeout, so a slow restart (a big model loading in
``__init__``, or a terminating pod whose runtime is gone) was charged as an ``ActorTimeout`` attempt.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import policy
from tests.support.mesh import Mesh

pytestmark = pytest.mark.slow


def test_a_message_waits_for_a_restarting_runtime_without_losing_an_attempt(tmp_path):
    actors = [{"name": "restarting", "handler": "slow_start_handlers.echo",
               "resiliency": policy(max_attempts=1, timeout="2s")}]
    mesh = Mesh(tmp_path, actors).start()
    try:
        (mesh.values_dir / "slow-start.flag").write_text("6")  # the next runtime takes 6 s to serve
        killed = mesh.kill("restarting", "runtime")
        sent = mesh.send(["restarting"], {"n": 1})
        record = mesh.wait_final(sent["id"], timeout=90)
        assert record["status"] == "succeeded", record  # one attempt only: an ActorTimeout would have failed it
        assert record["result"] == {"n": 1}
        assert mesh.pids()["restarting"]["runtime"] != killed
    finally:
        mesh.stop()
