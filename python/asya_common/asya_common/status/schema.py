"""Versioned schema migrations, run by every process when it opens the store.

Version 1 is the schema every store had before versioning (the ``records`` table only), written
with ``IF NOT EXISTS`` so an old file simply gets recorded as version 1. Each later version is a
list of statements applied once, inside one transaction that holds the migration lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so many processes starting at once migrate once.
Add a version by appending to ``MIGRATIONS``; never edit a released one.
"""

from __future__ import annotations

# ``{real}``/``{seq}`` are filled per dialect: SQLite REAL / INTEGER PRIMARY KEY AUTOINCREMENT,
# PostgreSQL DOUBLE PRECISION / BIGSERIAL PRIMARY KEY.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS records (
            id TEXT PRIMARY KEY,
            parent_id TEXT,
            status TEXT NOT NULL,
            actor TEXT,
            result TEXT,
            error TEXT,
            envelope TEXT,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS records_by_parent ON records(parent_id)",
    ]),
    (2, [
        "ALTER TABLE records ADD COLUMN root_id TEXT",
        "ALTER TABLE records ADD COLUMN owner TEXT",
        "ALTER TABLE records ADD COLUMN paused_seconds {real} NOT NULL DEFAULT 0",
        "UPDATE records SET root_id = id WHERE root_id IS NULL AND parent_id IS NULL",
        "UPDATE records SET root_id = parent_id WHERE root_id IS NULL",
        "CREATE INDEX IF NOT EXISTS records_by_root ON records(root_id)",
        "CREATE INDEX IF NOT EXISTS records_by_created ON records(created_at, id)",
        """CREATE TABLE IF NOT EXISTS events (
            seq {seq},
            root_id TEXT NOT NULL,
            envelope_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT,
            data TEXT,
            time {real} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS events_by_root ON events(root_id, seq)",
        """CREATE TABLE IF NOT EXISTS pauses (
            id TEXT PRIMARY KEY,
            root_id TEXT NOT NULL,
            actor TEXT,
            hop INTEGER NOT NULL,
            status TEXT NOT NULL,
            envelope TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_at {real} NOT NULL,
            expires_at {real},
            claimed_at {real},
            resolved_at {real}
        )""",
        "CREATE INDEX IF NOT EXISTS pauses_by_expiry ON pauses(status, expires_at)",
    ]),
    # the built-in fan-in actor (images/crew/asya_crew/fanin.py): one row per fan-out group, one per child result
    (3, [
        """CREATE TABLE IF NOT EXISTS fanin_groups (
            group_id TEXT PRIMARY KEY,
            parent_id TEXT,
            count INTEGER NOT NULL,
            created_at {real} NOT NULL,
            completed_at {real},
            failed_at {real}
        )""",
        """CREATE TABLE IF NOT EXISTS fanin_children (
            group_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            child_id TEXT NOT NULL,
            result TEXT NOT NULL,
            arrived_at {real} NOT NULL,
            PRIMARY KEY (group_id, idx)
        )""",
    ]),
]

LATEST = MIGRATIONS[-1][0]

DIALECT_TYPES = {
    "sqlite": {"real": "REAL", "seq": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"real": "DOUBLE PRECISION", "seq": "BIGSERIAL PRIMARY KEY"},
}


def pending(current: int, dialect: str) -> list[tuple[int, list[str]]]:
    """The migrations after version ``current``, rendered for ``dialect``."""
    types = DIALECT_TYPES[dialect]
    return [(version, [s.format(**types) for s in statements]) for version, statements in MIGRATIONS
            if version > current]
