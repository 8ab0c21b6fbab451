"""Issue 10, item 1 ("Also"): an envelope in a broker DLQ is ``dead_lettered`` in the status store, never ``running``.

Before the fix nothing wrote a final record for a message the broker moved to a DLQ (a handler that
kills its pod more often than ``maxReceiveCount``): ``asya status`` said ``running`` forever. Now the
controller's DLQ bookkeeping (``ASYA_STATUS_DB``) and ``asya dev`` mark every envelope they find in a
DLQ, unless its record is final already.
"""

from __future__ import annotations

import asyncio

from asya_common import dlq
from asya_common import envelope as env
from asya_common.status import open_store
from asya_common.transport import create_transport
from tests.support.require import wait_for


def test_an_envelope_in_a_dlq_is_dead_lettered_in_the_dev_mesh(hmesh):
    stuck = env.make_envelope(["echo"], {"n": 1}, envelope_id="dl-1")
    hmesh.store.mark_running(stuck["id"], "echo")

    async def park() -> None:
        async with create_transport(hmesh.transport_settings) as transport:
            await transport.send(env.dlq_name("echo"), env.dumps(stuck))

    asyncio.run(park())
    record = wait_for(lambda: (r := hmesh.store.get("dl-1")) and r["status"] == "dead_lettered" and r, 30,
                      what="dl-1 recorded dead_lettered")
    assert record["status"] == "dead_lettered"


async def test_record_dead_letters_leaves_final_records_alone(tmp_path):
    from asya_common.transport import QueueSpec, TransportSettings

    settings = TransportSettings(sqlite_path=str(tmp_path / "q.sqlite3"))
    store = open_store(tmp_path / "status.sqlite3")
    done = env.make_envelope(["a"], 1, envelope_id="done")
    store.record_final(done, "succeeded", actor="happy-end", result=1)
    store.mark_running("lost", "a")
    async with create_transport(settings) as transport:
        await transport.ensure_queue(QueueSpec("asya-a", "asya-a-dlq"))
        for envelope_id in ("done", "lost"):
            await transport.send("asya-a-dlq", env.dumps(env.make_envelope(["a"], 1, envelope_id=envelope_id)))
        await transport.send("asya-a-dlq", b"not an envelope")
        assert await dlq.record_dead_letters(transport, store, "asya-a-dlq") == 1
        assert (await transport.depth("asya-a-dlq")).total == 3  # looked at, never taken
    assert store.get("done")["status"] == "succeeded" and store.get("lost")["status"] == "dead_lettered"
