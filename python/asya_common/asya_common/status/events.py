"""The events feed's table: append in commit order, read one root's events or everyone's after a seq.

Event inserts are serialised (PostgreSQL: an advisory lock held to commit; SQLite: its one write
lock), so seq order is commit order: a reader that continues "after seq N" never skips a row that
commits later with a smaller seq. Each committed batch sends ``NOTIFY asya_events`` on PostgreSQL.
Mixed into :class:`~asya_common.status.store.StatusStore`.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

from asya_common.status.backends import Cursor
from asya_common.status.model import Event

EVENT_COLUMNS = "seq, root_id, envelope_id, kind, actor, data, time"
_INSERT_CHUNK = 200


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class EventsMixin:
    """Event operations of the status store (needs ``_db`` and ``_root_of``)."""

    def _append(self, cur: Cursor, events: list[Event]) -> list[int]:
        """Appends events in the caller's transaction (root ids resolved from records when None).

        Roots are looked up first (once per envelope id), then the ordering lock is taken for the
        inserts only, so concurrent writers wait as little as possible.
        """
        roots: dict[str, str] = {}
        rows = []
        for e in events:
            root = e.root_id
            if root is None:
                root = roots.get(e.envelope_id) or self._root_of(cur, e.envelope_id, None)
                roots[e.envelope_id] = root
            rows.append((root, e.envelope_id, e.kind, e.actor, _json(e.data), e.time or time.time()))
        self._db.lock_events(cur)
        seqs: list[int] = []
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start:start + _INSERT_CHUNK]
            values = ",".join(["(?,?,?,?,?,?)"] * len(chunk))
            fetched = cur.x(f"INSERT INTO events(root_id, envelope_id, kind, actor, data, time) VALUES {values} "
                            "RETURNING seq", [v for row in chunk for v in row]).fetchall()
            seqs += sorted(r[0] for r in fetched)
        self._db.notify(cur, seqs)
        return seqs

    def append_events(self, events: Iterable[Event]) -> list[int]:
        """Appends events in one transaction (``seq`` and, when None, ``root_id`` are filled in)."""
        events = list(events)
        if not events:
            return []
        with self._db.write() as cur:
            return self._append(cur, events)

    def events(self, root_id: str, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """Events of one root (the envelope a client submitted and its fan-out), in seq order."""
        with self._db.read() as cur:
            rows = cur.x(f"SELECT {EVENT_COLUMNS} FROM events WHERE root_id=? AND seq>? ORDER BY seq LIMIT ?",
                         (root_id, after_seq, limit)).fetchall()
        return [to_event(r) for r in rows]

    def events_since(self, after_seq: int, limit: int = 1000) -> list[Event]:
        """Events of every root after ``after_seq``, in seq order (the feed's tail)."""
        with self._db.read() as cur:
            rows = cur.x(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq>? ORDER BY seq LIMIT ?",
                         (after_seq, limit)).fetchall()
        return [to_event(r) for r in rows]

    def last_seq(self) -> int:
        """The highest seq written so far (0 for an empty feed)."""
        with self._db.read() as cur:
            return cur.x("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]


def to_event(row: tuple) -> Event:
    """An ``events`` row as an :class:`Event`."""
    seq, root_id, envelope_id, kind, actor, data, at = row
    return Event(int(seq), root_id, envelope_id, kind, actor, json.loads(data) if data else None, at)
