"""The two database backends under :class:`~asya_common.status.store.StatusStore`: SQLite and PostgreSQL.

A backend hands out transactions (``write()`` holds the write lock; ``read()`` does not) whose
cursor takes ``?`` placeholders on both databases, and knows its dialect's details: the events
ordering lock and ``NOTIFY``. psycopg is imported only when a ``postgresql://`` URL is opened, so
the runtime and the SQLite path stay standard-library only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from asya_common.status import schema

NOTIFY_CHANNEL = "asya_events"
_EVENTS_LOCK_KEY = 0x41535941  # pg_advisory_xact_lock key that orders event inserts ("ASYA")
_MIGRATE_LOCK_KEY = 0x41535942


class Cursor:
    """A DB-API cursor that accepts ``?`` placeholders on both databases."""

    def __init__(self, raw: Any, postgres: bool):
        self.raw, self._pg = raw, postgres

    def x(self, sql: str, params: tuple | list = ()) -> Any:
        """Executes one statement; returns the raw cursor (``fetchone``/``fetchall``/``rowcount``)."""
        if self._pg:
            sql = sql.replace("%", "%%").replace("?", "%s")
        self.raw.execute(sql, tuple(params))
        return self.raw


class SQLiteBackend:
    """One SQLite file in WAL mode, shared by many processes (``busy_timeout`` waits for the lock)."""

    dialect = "sqlite"
    skip_locked = ""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        if fresh:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # owner-only: records hold payloads
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._enable_wal()
        self._lock = threading.RLock()

    def _enable_wal(self) -> None:
        """Switches the file to WAL. Several processes opening a new file at once may find it locked:
        SQLite answers ``database is locked`` at once there (no busy wait), so retry for a while."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursor]:
        """A transaction holding SQLite's write lock from its first statement (``BEGIN IMMEDIATE``)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(self._conn.cursor(), False)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        """Autocommit reads (each statement sees the latest committed state)."""
        with self._lock:
            yield Cursor(self._conn.cursor(), False)

    def lock_events(self, cur: Cursor) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already serialises writers, so seq order is commit order."""

    def notify(self, cur: Cursor, seqs: list[int]) -> None:
        """Nothing to do: SQLite readers poll by seq."""

    def migrate(self) -> None:
        """Applies pending migrations once (the first process to take the write lock does it)."""
        with self.write() as cur:
            _apply_pending_migrations(cur, self.dialect)

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._conn.close()


class PostgresBackend:
    """One PostgreSQL connection (reconnected when broken), serialised by a lock; thread-safe."""

    dialect = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("a postgresql:// status store needs psycopg: pip install 'asya-common[postgres]'") \
                from exc
        self._psycopg = psycopg
        self.url = url
        self._lock = threading.RLock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def _connection(self) -> Any:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursor]:
        """One transaction (row locks and advisory locks are taken by the statements themselves)."""
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as raw:
                yield Cursor(raw, True)

    read = write

    def lock_events(self, cur: Cursor) -> None:
        """Serialises event inserts so that seq order equals commit order (no reader can skip a seq)."""
        cur.x("SELECT pg_advisory_xact_lock(?)", (_EVENTS_LOCK_KEY,))

    def notify(self, cur: Cursor, seqs: list[int]) -> None:
        """Tells every listener which seqs were written (delivered when the transaction commits)."""
        if seqs:
            cur.x("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, f"{seqs[0]}-{seqs[-1]}"))

    def migrate(self) -> None:
        """Applies pending migrations once across every process (advisory lock)."""
        with self.write() as cur:
            cur.x("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK_KEY,))
            _apply_pending_migrations(cur, self.dialect)

    def listen_connection(self) -> Any:
        """A new autocommit connection for ``LISTEN`` (the feed owns and closes it)."""
        conn = self._connect()
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return conn

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._conn.close()


def open_backend(url_or_path: str | Path) -> SQLiteBackend | PostgresBackend:
    """A path or ``sqlite:///path`` -> SQLite; ``postgresql://`` or ``postgres://`` -> PostgreSQL."""
    text = str(url_or_path)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite://"):]
    elif "://" in text:
        raise ValueError(f"unsupported status store URL {text.split('://')[0]}:// "
                         "(use a file path, sqlite:///path or postgresql://...)")
    if not text:
        raise ValueError("status store location is empty (set ASYA_STATUS_DB)")
    return SQLiteBackend(text)


def _apply_pending_migrations(cur: Cursor, dialect: str) -> None:
    """Runs every migration newer than the store's ``schema_version`` inside the caller's transaction."""
    cur.x("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = cur.x("SELECT MAX(version) FROM schema_version").fetchone()
    for version, statements in schema.pending(row[0] or 0, dialect):
        for statement in statements:
            cur.x(statement)
        cur.x("INSERT INTO schema_version(version) VALUES (?)", (version,))
