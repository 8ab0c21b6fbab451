"""The crew writes final records and final events through ``ASYA_STATUS_DB`` (SQLite path or PostgreSQL URL)."""

from __future__ import annotations

import pytest

from asya_common import envelope as env
from asya_common.status import FAILED, SUCCEEDED, open_store


@pytest.fixture
def crew(store_url, monkeypatch):
    from asya_crew import handlers

    monkeypatch.setenv("ASYA_STATUS_DB", store_url)
    monkeypatch.setattr(handlers, "_store", None)
    yield handlers
    if handlers._store is not None:
        handlers._store.close()


def test_happy_end_and_error_end_write_records_and_final_events_under_the_root(crew, store_url):
    store = open_store(store_url)
    root = env.make_envelope(["split", "work"], [1, 2])
    store.create(root)
    store.mark_spawned(root["id"], [f"{root['id']}-1"], "split")
    done = {**env.copy_envelope(root), "route": {"prev": ["split", "work"], "curr": "happy-end", "next": []},
            "payload": 2}
    crew.happy_end(done)
    crew.happy_end(done)  # redelivered: same record, no second event
    child = {"id": f"{root['id']}-1", "parent_id": root["id"], "route": {"prev": ["split"], "curr": "work",
                                                                         "next": []}, "headers": {}, "payload": 1}
    failed = env.to_error_end(child, {"actor": "work", "type": "ValueError", "message": "no", "traceback": "",
                                      "attempts": []})
    crew.error_end(failed)
    tree = store.tree(root["id"])
    assert tree["status"] == SUCCEEDED and tree["result"] == 2
    assert tree["branches"][0]["status"] == FAILED and tree["branches"][0]["root_id"] == root["id"]
    kinds = [(e.kind, e.envelope_id) for e in store.events(root["id"])]
    assert kinds == [("created", root["id"]), ("spawned", root["id"]), ("succeeded", root["id"]),
                     ("failed", child["id"])]
