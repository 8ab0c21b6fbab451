"""Records and events: one record per envelope id, and the append-only feed of what happened to it.

``asya send`` / the gateway ``create`` a record (``pending``), sidecars mark ``running``, register
fan-out children (``spawned``) and stream ``fly`` chunks, the crew writes the final record. Every
change also appends an :class:`~asya_common.status.model.Event` whose ``seq`` is global and
strictly increasing in commit order, which is what lets a reader resume "after seq N" without a gap.
Paused envelopes are in :mod:`asya_common.status.pauses`. Sync and thread-safe; async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from asya_common.status.backends import Cursor, PostgresBackend, SQLiteBackend, open_backend
from asya_common.status.model import (
    CANCELED, CREATED, DEAD_LETTERED, FAILED, FINAL, PAUSE_CANCELED, PAUSE_WAITING, PAUSED, PENDING, RUNNING,
    SPAWNED, SUCCEEDED, Event,
)
from asya_common.status.events import EventsMixin, _json
from asya_common.status.pauses import PauseMixin

COLUMNS = "id, parent_id, status, actor, result, error, envelope, created_at, updated_at, root_id, owner, paused_seconds"


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class StatusStore(EventsMixin, PauseMixin):
    """The status store on SQLite or PostgreSQL (see :func:`open_store`).

    Args:
        url_or_path: A file path, ``sqlite:///path`` or ``postgresql://user@host:port/db``.
    """

    def __init__(self, url_or_path: str | Path):
        self._db: SQLiteBackend | PostgresBackend = open_backend(url_or_path)
        self.dialect = self._db.dialect
        self.path = getattr(self._db, "path", None)
        self._db.migrate()

    def close(self) -> None:
        """Closes the database connection."""
        self._db.close()

    @property
    def _conn(self):  # noqa: ANN202 - the DB-API connection, for tests and tools that run their own SQL
        return self._db._conn

    # -- records ---------------------------------------------------------------------------------

    def _root_of(self, cur: Cursor, envelope_id: str, parent_id: str | None) -> str:
        """The root id of a (possibly new) record: its own, else its parent's root, else itself."""
        row = cur.x("SELECT root_id FROM records WHERE id=?", (envelope_id,)).fetchone()
        if row and row[0]:
            return row[0]
        if parent_id:
            row = cur.x("SELECT root_id FROM records WHERE id=?", (parent_id,)).fetchone()
            return row[0] if row and row[0] else parent_id
        return envelope_id

    def _insert_pending(self, cur: Cursor, envelope_id: str, actor: str | None, parent_id: str | None,
                        owner: str | None, envelope: dict[str, Any] | None, now: float) -> str | None:
        """Inserts a pending record unless one exists; returns its root id when it was inserted."""
        root = self._root_of(cur, envelope_id, parent_id)
        inserted = cur.x(
            "INSERT INTO records(id, parent_id, root_id, owner, status, actor, envelope, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
            (envelope_id, parent_id, root, owner, PENDING, actor, _json(envelope), now, now)).rowcount
        return root if inserted else None

    def create(self, envelope: dict[str, Any], *, owner: str | None = None) -> bool:
        """Records a submitted envelope as ``pending`` with a ``created`` event; False if it existed already."""
        now = time.time()
        with self._db.write() as cur:
            actor = envelope.get("route", {}).get("curr")
            root = self._insert_pending(cur, envelope["id"], actor, envelope.get("parent_id"), owner, envelope, now)
            if root is not None:
                self._append(cur, [Event(0, root, envelope["id"], CREATED, actor,
                                         {"route": envelope.get("route"), "owner": owner}, now)])
            return root is not None

    def mark_pending(self, envelope_id: str, actor: str | None = None, parent_id: str | None = None) -> None:
        """Creates a ``pending`` record unless one exists already (``asya send``; a ``created`` event)."""
        now = time.time()
        with self._db.write() as cur:
            root = self._insert_pending(cur, envelope_id, actor, parent_id, None, None, now)
            if root is not None:
                self._append(cur, [Event(0, root, envelope_id, CREATED, actor, None, now)])

    def reset(self, envelope_id: str) -> None:
        """Moves a record back to ``pending`` (a replay), keeping nothing of its final state."""
        now = time.time()
        with self._db.write() as cur:
            cur.x("UPDATE records SET status=?, result=NULL, error=NULL, updated_at=? WHERE id=?",
                  (PENDING, now, envelope_id))
            self._append(cur, [Event(0, None, envelope_id, CREATED, None, {"replay": True}, now)])

    def mark_running(self, envelope_id: str, actor: str) -> None:
        """Marks a record ``running`` at ``actor`` (+ ``running`` event); final records never move back."""
        self.record_progress([Event(0, None, envelope_id, RUNNING, actor, None, time.time())])

    def mark_spawned(self, parent_id: str, child_ids: list[str], actor: str) -> None:
        """Registers fan-out children as ``pending`` under ``parent_id`` (+ ``spawned`` event on the parent)."""
        self.record_progress([Event(0, None, parent_id, SPAWNED, actor, {"children": list(child_ids)}, time.time())])

    def record_progress(self, events: Iterable[Event]) -> list[int]:
        """Writes a batch of sidecar events in one transaction, applying their record side effects.

        ``running`` marks the record running (unless final or paused), ``spawned`` registers the
        children listed in ``data["children"]``; other kinds (``fly``) are appended as they are.

        Returns:
            The seqs of the appended events.
        """
        events = list(events)
        if not events:
            return []
        with self._db.write() as cur:
            for event in events:
                now = event.time or time.time()
                if event.kind == RUNNING:
                    root = self._root_of(cur, event.envelope_id, None)
                    cur.x("INSERT INTO records(id, root_id, status, actor, created_at, updated_at) VALUES (?,?,?,?,?,?) "
                          "ON CONFLICT(id) DO UPDATE SET status=excluded.status, actor=excluded.actor, "
                          f"updated_at=excluded.updated_at WHERE records.status NOT IN ({_placeholders(len(FINAL) + 1)})",
                          (event.envelope_id, root, RUNNING, event.actor, now, now, *FINAL, PAUSED))
                elif event.kind == SPAWNED:
                    for child in (event.data or {}).get("children", []):
                        self._insert_pending(cur, child, event.actor, event.envelope_id, None, None, now)
            return self._append(cur, events)

    def record_final(self, envelope: dict[str, Any], status: str, *, actor: str | None, result: Any = None,
                     error: Any = None) -> None:
        """Writes the final record of an envelope and its final event.

        Idempotent: a redelivery rewrites the same record and appends no second event. A canceled
        record keeps its status.
        """
        now = time.time()
        with self._db.write() as cur:
            row = cur.x("SELECT status FROM records WHERE id=?", (envelope["id"],)).fetchone()
            previous = row[0] if row else None
            root = self._root_of(cur, envelope["id"], envelope.get("parent_id"))
            keep = previous == CANCELED
            cur.x(f"INSERT INTO records({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                  "status=excluded.status, actor=excluded.actor, result=excluded.result, error=excluded.error, "
                  "envelope=excluded.envelope, updated_at=excluded.updated_at",
                  (envelope["id"], envelope.get("parent_id"), CANCELED if keep else status, actor,
                   json.dumps(result, ensure_ascii=False), _json(error), json.dumps(envelope, ensure_ascii=False),
                   now, now, root, None, 0.0))
            if previous != status and not keep:
                data = {"result": result} if status == SUCCEEDED else {"error": _error_summary(error)}
                self._append(cur, [Event(0, root, envelope["id"], status, actor, data, now)])

    def cancel(self, envelope_id: str) -> bool:
        """Marks a record ``canceled`` (and its pause, if any); False when unknown or already final."""
        now = time.time()
        with self._db.write() as cur:
            changed = cur.x(f"UPDATE records SET status=?, updated_at=? WHERE id=? AND status NOT IN "
                            f"({_placeholders(len(FINAL))})", (CANCELED, now, envelope_id, *FINAL)).rowcount
            if changed:
                cur.x("UPDATE pauses SET status=?, resolved_at=? WHERE id=? AND status=?",
                      (PAUSE_CANCELED, now, envelope_id, PAUSE_WAITING))
                self._append(cur, [Event(0, None, envelope_id, CANCELED, None, None, now)])
            return bool(changed)

    def mark_dead_lettered(self, envelope_id: str, queue: str) -> None:
        """Marks a record ``dead_lettered``: its message sits in ``queue`` (a DLQ) for a person."""
        now = time.time()
        with self._db.write() as cur:
            root = self._root_of(cur, envelope_id, None)
            cur.x("INSERT INTO records(id, root_id, status, error, created_at, updated_at) VALUES (?,?,?,?,?,?) "
                  "ON CONFLICT(id) DO UPDATE SET status=excluded.status, error=excluded.error, "
                  "updated_at=excluded.updated_at",
                  (envelope_id, root, DEAD_LETTERED, _json({"queue": queue}), now, now))
            self._append(cur, [Event(0, root, envelope_id, DEAD_LETTERED, None, {"queue": queue}, now)])

    def get(self, envelope_id: str) -> dict[str, Any] | None:
        """Returns the record of ``envelope_id`` as a JSON-ready dict, or None."""
        with self._db.read() as cur:
            row = cur.x(f"SELECT {COLUMNS} FROM records WHERE id=?", (envelope_id,)).fetchone()
        return to_record(row) if row else None

    def stored_envelope(self, envelope_id: str) -> tuple[str, dict[str, Any] | None] | None:
        """``(status, envelope)`` of a record (the envelope as last stored), or None."""
        with self._db.read() as cur:
            row = cur.x("SELECT status, envelope FROM records WHERE id=?", (envelope_id,)).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1]) if row[1] else None

    def children(self, envelope_id: str) -> list[dict[str, Any]]:
        """Records of the fan-out children of ``envelope_id`` (direct children only)."""
        with self._db.read() as cur:
            rows = cur.x(f"SELECT {COLUMNS} FROM records WHERE parent_id=? ORDER BY created_at, id",
                         (envelope_id,)).fetchall()
        return [to_record(r) for r in rows]

    def tree(self, envelope_id: str) -> dict[str, Any] | None:
        """The record of ``envelope_id`` with its fan-out descendants under ``branches``."""
        record = self.get(envelope_id)
        if record is None:
            return None
        branches = [self.tree(child["id"]) for child in self.children(envelope_id) if child["id"] != envelope_id]
        if branches:
            record["branches"] = branches
        return record

    def list_records(self, *, status: str | None = None, actor: str | None = None, since: float | None = None,
                     owner: str | None = None, limit: int = 50, cursor: str | None = None,
                     roots_only: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        """Records, newest first, filtered and paged.

        Args:
            status: Only this status. actor: Only records last at this actor. since: Created at or after
                this unix time. owner: Only this owner. roots_only: Only submitted envelopes (no children).
            limit: Page size (1..1000). cursor: ``next_cursor`` of the previous page.

        Returns:
            ``(records, next_cursor)``; ``next_cursor`` is None on the last page.
        """
        limit = max(1, min(int(limit), 1000))
        where, params = [], []
        for column, value in (("status", status), ("actor", actor), ("owner", owner)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        if since is not None:
            where.append("created_at>=?")
            params.append(float(since))
        if roots_only:
            where.append("root_id=id")
        if cursor:
            try:
                created, last_id = cursor.split("|", 1)
                where.append("(created_at<? OR (created_at=? AND id<?))")
                params += [float(created), float(created), last_id]
            except ValueError:
                raise ValueError(f"invalid cursor {cursor!r}") from None
        sql = f"SELECT {COLUMNS} FROM records" + (" WHERE " + " AND ".join(where) if where else "")
        with self._db.read() as cur:
            rows = cur.x(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit + 1)).fetchall()
        records = [to_record(r) for r in rows[:limit]]
        next_cursor = f"{records[-1]['created_at']!r}|{records[-1]['id']}" if len(rows) > limit else None
        return records, next_cursor

    def schema_version(self) -> int:
        """The schema version this store is at."""
        with self._db.read() as cur:
            return cur.x("SELECT MAX(version) FROM schema_version").fetchone()[0]


def _error_summary(error: Any) -> Any:
    if isinstance(error, dict):
        return {k: error.get(k) for k in ("actor", "type", "message") if k in error}
    return error


def to_record(row: tuple) -> dict[str, Any]:
    """A ``records`` row as the JSON-ready record ``asya status`` and the gateway show."""
    (envelope_id, parent_id, status, actor, result, error, envelope, created_at, updated_at, root_id, owner,
     paused_seconds) = row
    record: dict[str, Any] = {"id": envelope_id, "status": status, "actor": actor}
    if parent_id:
        record["parent_id"] = parent_id
    record["root_id"] = root_id or envelope_id
    if owner:
        record["owner"] = owner
    if status == SUCCEEDED:
        record["result"] = json.loads(result) if result is not None else None
    if status in (FAILED, DEAD_LETTERED):
        record["error"] = json.loads(error) if error else None
    if status == FAILED:
        record["payload"] = json.loads(envelope).get("payload") if envelope else None
    if paused_seconds:
        record["paused_seconds"] = paused_seconds
    record["created_at"], record["updated_at"] = created_at, updated_at
    return record


def is_settled(record: dict[str, Any]) -> bool:
    """True when a record and all its fan-out branches are final."""
    return record["status"] in FINAL and all(is_settled(b) for b in record.get("branches", []))
