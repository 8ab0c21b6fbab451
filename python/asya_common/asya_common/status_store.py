"""The status store: one record per envelope id, from ``pending`` to ``succeeded`` or ``failed``.

``asya send`` writes ``pending``, sidecars (in ``asya dev``) mark ``running`` with the current actor
and register fan-out children, and the crew (``happy-end`` / ``error-end``) writes the final record.
``asya status`` and, later, the gateway read it. SQLite in the state dir; standard library only,
because the crew runs inside the stdlib-only runtime.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
FINAL = (SUCCEEDED, FAILED)

_SCHEMA = """
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
_COLUMNS = "id, parent_id, status, actor, result, error, envelope, created_at, updated_at"


class StatusStore:
    """Reads and writes envelope records in one SQLite file (shared by many processes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Closes the database connection."""
        self._conn.close()

    def mark_pending(self, envelope_id: str, actor: str | None = None, parent_id: str | None = None) -> None:
        """Creates a ``pending`` record unless one exists already."""
        now = time.time()
        self._conn.execute(
            "INSERT OR IGNORE INTO records(id, parent_id, status, actor, created_at, updated_at) VALUES (?,?,?,?,?,?)",
            (envelope_id, parent_id, PENDING, actor, now, now),
        )

    def reset(self, envelope_id: str) -> None:
        """Moves a record back to ``pending`` (a replay), keeping nothing of its final state."""
        self._conn.execute("UPDATE records SET status=?, result=NULL, error=NULL, updated_at=? WHERE id=?",
                           (PENDING, time.time(), envelope_id))

    def mark_running(self, envelope_id: str, actor: str) -> None:
        """Marks a record ``running`` at ``actor``; final records are never moved back."""
        now = time.time()
        self._conn.execute(
            "INSERT INTO records(id, status, actor, created_at, updated_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET status=excluded.status, actor=excluded.actor, updated_at=excluded.updated_at "
            "WHERE records.status NOT IN (?, ?)",
            (envelope_id, RUNNING, actor, now, now, SUCCEEDED, FAILED),
        )

    def record_final(self, envelope: dict[str, Any], status: str, *, actor: str | None, result: Any = None,
                     error: Any = None) -> None:
        """Writes the final record of an envelope (idempotent: a redelivery rewrites the same record)."""
        now = time.time()
        self._conn.execute(
            f"INSERT INTO records({_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, actor=excluded.actor, "
            "result=excluded.result, error=excluded.error, envelope=excluded.envelope, updated_at=excluded.updated_at",
            (
                envelope["id"],
                envelope.get("parent_id"),
                status,
                actor,
                json.dumps(result, ensure_ascii=False),
                json.dumps(error, ensure_ascii=False) if error is not None else None,
                json.dumps(envelope, ensure_ascii=False),
                now,
                now,
            ),
        )

    def get(self, envelope_id: str) -> dict[str, Any] | None:
        """Returns the record of ``envelope_id`` as a JSON-ready dict, or None."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM records WHERE id=?", (envelope_id,)).fetchone()
        return _to_record(row) if row else None

    def stored_envelope(self, envelope_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """``(status, envelope)`` of a record (the envelope as the crew received it), or None."""
        row = self._conn.execute("SELECT status, envelope FROM records WHERE id=?", (envelope_id,)).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1]) if row[1] else None

    def children(self, envelope_id: str) -> list[dict[str, Any]]:
        """Records of the fan-out children of ``envelope_id`` (direct children only)."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE parent_id=? ORDER BY created_at, id", (envelope_id,)
        ).fetchall()
        return [_to_record(r) for r in rows]

    def tree(self, envelope_id: str) -> dict[str, Any] | None:
        """The record of ``envelope_id`` with its fan-out descendants under ``branches``."""
        record = self.get(envelope_id)
        if record is None:
            return None
        branches = [self.tree(child["id"]) for child in self.children(envelope_id) if child["id"] != envelope_id]
        if branches:
            record["branches"] = branches
        return record


def is_settled(record: dict[str, Any]) -> bool:
    """True when a record and all its fan-out branches are final."""
    return record["status"] in FINAL and all(is_settled(b) for b in record.get("branches", []))


def _to_record(row: tuple) -> dict[str, Any]:
    envelope_id, parent_id, status, actor, result, error, envelope, created_at, updated_at = row
    record: dict[str, Any] = {"id": envelope_id, "status": status, "actor": actor}
    if parent_id:
        record["parent_id"] = parent_id
    if status == SUCCEEDED:
        record["result"] = json.loads(result) if result is not None else None
    if status == FAILED:
        record["error"] = json.loads(error) if error else None
        record["payload"] = json.loads(envelope).get("payload") if envelope else None
    record["created_at"], record["updated_at"] = created_at, updated_at
    return record
