"""Versioned schema upgrades at open: a store file from before versioning keeps working."""

from __future__ import annotations

import sqlite3
import threading

from asya_common import envelope as env
from asya_common.status import PAUSED, SUCCEEDED, open_store
from asya_common.status.schema import LATEST

# The exact schema every status store had before versioned migrations (asya_common/status_store.py).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    parent_id TEXT,
    status TEXT NOT NULL,
    actor TEXT,
    result TEXT,
    error TEXT,
    envelope TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_parent ON records(parent_id);
"""


def test_old_sqlite_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "status.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.execute("INSERT INTO records VALUES ('r1', NULL, 'succeeded', 'a', '42', NULL, '{}', 1.0, 2.0)")
    conn.execute("INSERT INTO records VALUES ('r1-1', 'r1', 'pending', 'a', NULL, NULL, NULL, 1.5, 1.5)")
    conn.commit()
    conn.close()

    store = open_store(path)
    assert store.schema_version() == LATEST
    old = store.get("r1")
    assert old["status"] == SUCCEEDED and old["result"] == 42 and old["root_id"] == "r1"
    assert store.get("r1-1")["root_id"] == "r1"
    assert store.tree("r1")["branches"][0]["id"] == "r1-1"
    # the new tables work on the upgraded file
    e = env.make_envelope(["a", "b"], {"q": 1})
    store.create(e)
    routed = env.advance(env.copy_envelope(e))
    assert store.park(routed, {"prompt": "ok?"}, "a") is True
    assert store.get(e["id"])["status"] == PAUSED
    assert [ev.kind for ev in store.events(e["id"])] == ["created", "paused"]
    store.close()
    # opening again migrates nothing twice
    again = open_store(path)
    assert again.schema_version() == LATEST and again.get("r1")["result"] == 42
    cols = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(records)")}
    assert {"root_id", "owner", "paused_seconds"} <= cols


def test_many_processes_opening_at_once_migrate_once(store_url):
    errors, stores = [], []

    def open_one():
        try:
            stores.append(open_store(store_url))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with stores[0]._db.read() as cur:
        versions = [r[0] for r in cur.x("SELECT version FROM schema_version ORDER BY version").fetchall()]
    assert versions == list(range(1, LATEST + 1))
    for s in stores:
        s.close()
