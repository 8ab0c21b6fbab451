"""Embedded SQLite queue: the default transport, so the whole mesh runs on a laptop with no broker.

One database file is shared by every process of a dev mesh (sidecars, crew, CLI). Each queue is a
set of rows in ``messages``; a receive leases rows by pushing ``visible_at`` into the future under
a fresh ``lease_token``, so a crashed consumer's messages simply become visible again when the lease
runs out. Every state change is committed (WAL) before its call returns, which is what "durably sent"
means here; leases, sends, acks and nacks queued at the same moment share one commit
(``_sqlite_group.GroupCommit``); ``forward`` writes a message's outputs and deletes it in one write, so a
lost lease publishes nothing. ``ASYA_SQLITE_SYNCHRONOUS`` picks what a commit waits for: ``NORMAL``
(the default) survives the crash or kill -9 of any process, ``FULL`` also a power loss (one fsync per
commit; see docs/transports.md). Deliveries are counted per message; one that would exceed its
queue's ``max_receive_count`` is moved to the queue's DLQ instead of being delivered.

Why not a library: the maintained SQLite queues on PyPI (persist-queue, litequeue) have no leases
with expiry, delayed visibility, receive counts or dead-lettering across processes; this module is
small and proven by the same contract suite as the real brokers (``tests/contract``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from asya_common.transport.base import (
    EnsureResult,
    LeaseLost,
    QueueDepth,
    QueueNotFound,
    QueueSpec,
    ReceivedMessage,
    Transport,
    TransportError,
    drift_between,
)
from asya_common.transport._sqlite_group import GroupCommit
from asya_common.transport.config import TransportSettings

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    dlq_name TEXT,
    max_receive_count INTEGER NOT NULL,
    lease_seconds REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue, visible_at, seq);
"""
_POLL_MIN, _POLL_MAX = 0.005, 0.05


class SQLiteTransport(Transport):
    """Transport over one SQLite file (``ASYA_SQLITE_PATH``), safe across processes."""

    name = "sqlite"
    max_message_bytes = 100 * 1024 * 1024

    def __init__(self, settings: TransportSettings):
        self._path = Path(settings.sqlite_path)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._synchronous = settings.sqlite_synchronous.upper()
        self._group = GroupCommit(lambda: self._conn)
        # Lease tokens: unique per process (random prefix) and per lease (counter); cheaper than uuid4.
        self._token_prefix = os.urandom(8).hex()
        self._token_counter = itertools.count(1)

    # -- plumbing -------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._conn is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asya-sqlite")
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30.0
        while True:
            conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                # Another process is creating the same database (asya send while asya dev starts): SQLite
                # answers "database is locked" at once, without its busy handler, while the journal mode
                # changes or a schema read is upgraded to a write. Open again until it is done.
                conn.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is None:
            return
        await self._run(self._conn.close)
        self._conn = None
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise TransportError("SQLite transport is not connected (call connect() first)")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise TransportError(f"SQLite queue {self._path}: {exc}") from exc

    async def _write(self, body: Callable[[sqlite3.Connection], T],
                     peek: Callable[[sqlite3.Connection], T | None] | None = None) -> T:
        """One write transaction, committed together with the writes queued meanwhile (one commit).

        ``peek`` (a read before the transaction) may answer instead, and the write is then skipped.
        """
        if self._executor is None:
            raise TransportError("SQLite transport is not connected (call connect() first)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        if self._group.submit(body, future, peek):
            try:
                loop.run_in_executor(self._executor, self._group.drain)
            except RuntimeError as exc:  # executor shut down by close()
                self._group.abandon(TransportError(f"SQLite transport is closing: {exc}"))
        try:
            return await future
        except sqlite3.Error as exc:
            raise TransportError(f"SQLite queue {self._path}: {exc}") from exc

    def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``body`` in one write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- queues ---------------------------------------------------------------------------
    async def ensure_queue(self, spec: QueueSpec) -> list[EnsureResult]:
        return await self._run(self._tx, lambda conn: self._ensure(conn, spec))

    def _ensure(self, conn: sqlite3.Connection, spec: QueueSpec) -> list[EnsureResult]:
        results = []
        if spec.dlq_name:
            results.append(self._ensure_one(conn, spec.dlq_name, None, 0, spec.lease_seconds))
        results.append(self._ensure_one(conn, spec.name, spec.dlq_name, spec.max_receive_count, spec.lease_seconds))
        return results

    @staticmethod
    def _ensure_one(conn: sqlite3.Connection, name: str, dlq: str | None, max_count: int, lease: float) -> EnsureResult:
        row = conn.execute("SELECT dlq_name, max_receive_count FROM queues WHERE name=?", (name,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO queues(name, dlq_name, max_receive_count, lease_seconds, created_at) VALUES (?,?,?,?,?)",
                (name, dlq, max_count, lease, time.time()),
            )
            return EnsureResult(queue=name, created=True)
        wanted = {"dlq_name": dlq, "max_receive_count": max_count}
        actual = {"dlq_name": row[0], "max_receive_count": row[1]}
        return EnsureResult(queue=name, created=False, drift=drift_between(wanted, actual))

    def _require_queue(self, conn: sqlite3.Connection, queue: str) -> None:
        if conn.execute("SELECT 1 FROM queues WHERE name=?", (queue,)).fetchone() is None:
            raise QueueNotFound(f"queue {queue!r} does not exist in {self._path}")

    async def delete_queue(self, name: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE queue=?", (name,))
            conn.execute("DELETE FROM queues WHERE name=?", (name,))

        await self._run(self._tx, delete)

    async def list_queues(self) -> list[str]:
        """Names of every queue in the database (used by ``asya dlq list``)."""
        rows = await self._run(lambda: self._conn.execute("SELECT name FROM queues ORDER BY name").fetchall())
        return [r[0] for r in rows]

    # -- messages -------------------------------------------------------------------------
    async def send(self, queue: str, body: bytes, *, delay_seconds: float = 0.0) -> None:
        await self.send_many(queue, [body], delay_seconds=delay_seconds)

    async def send_many(self, queue: str, bodies: list[bytes], *, delay_seconds: float = 0.0) -> None:
        for body in bodies:
            self.check_size(queue, body)
        await self._write(lambda conn: self._insert(conn, queue, bodies, delay_seconds))

    async def forward(self, message: ReceivedMessage, queue: str, bodies: list[bytes], *,
                      delay_seconds: float = 0.0) -> None:
        """Inserts the outputs and deletes the leased input in one write (one SAVEPOINT, one COMMIT).

        Both land or neither: a lease lost to another consumer raises :class:`LeaseLost` with nothing
        inserted, so a redelivery never finds the outputs of an earlier attempt. A lease that ran out
        while nobody took the message is still ours (its token is unchanged), and the write succeeds.
        """
        for body in bodies:
            self.check_size(queue, body)
        seq, token = message.handle

        def forward(conn: sqlite3.Connection) -> None:  # a QueueNotFound from _insert rolls the delete back
            if conn.execute("DELETE FROM messages WHERE seq=? AND lease_token=?", (seq, token)).rowcount == 0:
                raise LeaseLost(f"lease on message {message.message_id} in {message.queue!r} was lost; "
                                "nothing was sent")
            self._insert(conn, queue, bodies, delay_seconds)

        await self._write(forward)

    def _insert(self, conn: sqlite3.Connection, queue: str, bodies: list[bytes], delay_seconds: float) -> None:
        self._require_queue(conn, queue)
        now = time.time()
        conn.executemany(
            "INSERT INTO messages(message_id, queue, body, enqueued_at, visible_at) VALUES (?,?,?,?,?)",
            [(os.urandom(16).hex(), queue, b, now, now + delay_seconds) for b in bodies],
        )

    async def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 1.0, lease_seconds: float = 30.0
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + wait_seconds
        pause = _POLL_MIN
        first_poll = True
        while True:
            messages = await self._write(
                lambda conn: self._lease_locked(conn, queue, max_messages, lease_seconds),
                peek=lambda conn, check=first_poll: self._peek(conn, queue, check))
            first_poll = False
            if messages or time.monotonic() >= deadline:
                return messages
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, _POLL_MAX)

    def _peek(self, conn: sqlite3.Connection, queue: str, check_exists: bool) -> list[ReceivedMessage] | None:
        """Cheap read first (WAL readers never block): None (go and lease) only when there is work."""
        if conn.execute(
            "SELECT 1 FROM messages WHERE queue=? AND visible_at<=? LIMIT 1", (queue, time.time())
        ).fetchone() is not None:
            return None
        if check_exists:
            self._require_queue(conn, queue)
        return []

    def _lease_locked(self, conn: sqlite3.Connection, queue: str, limit: int,
                      lease_seconds: float) -> list[ReceivedMessage]:
        spec = conn.execute("SELECT dlq_name, max_receive_count FROM queues WHERE name=?", (queue,)).fetchone()
        if spec is None:
            raise QueueNotFound(f"queue {queue!r} does not exist")
        dlq, max_count = spec
        now = time.time()
        rows = conn.execute(
            "SELECT seq, message_id, body, receive_count, enqueued_at FROM messages "
            "WHERE queue=? AND visible_at<=? ORDER BY visible_at, seq LIMIT ?",
            (queue, now, limit),
        ).fetchall()
        leased = []
        for seq, message_id, body, count, enqueued_at in rows:
            if dlq and max_count and count >= max_count:
                conn.execute(
                    "UPDATE messages SET queue=?, visible_at=?, receive_count=0, lease_token=NULL WHERE seq=?",
                    (dlq, now, seq),
                )
                continue
            token = f"{self._token_prefix}-{next(self._token_counter)}"
            conn.execute(
                "UPDATE messages SET visible_at=?, receive_count=?, lease_token=? WHERE seq=?",
                (now + lease_seconds, count + 1, token, seq),
            )
            leased.append(
                ReceivedMessage(queue, bytes(body), message_id, count + 1, handle=(seq, token), enqueued_at=enqueued_at)
            )
        return leased

    async def _update_leased(self, message: ReceivedMessage, sql: str, *params: Any) -> None:
        seq, token = message.handle

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, (*params, seq, token)).rowcount == 0:
                raise LeaseLost(f"lease on message {message.message_id} in {message.queue!r} was lost")

        await self._write(update)

    async def ack(self, message: ReceivedMessage) -> None:
        await self._update_leased(message, "DELETE FROM messages WHERE seq=? AND lease_token=?")

    async def nack(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        await self._update_leased(
            message,
            "UPDATE messages SET visible_at=?, lease_token=NULL WHERE seq=? AND lease_token=?",
            time.time() + delay_seconds,
        )

    async def extend_lease(self, message: ReceivedMessage, seconds: float) -> None:
        await self._update_leased(
            message,
            "UPDATE messages SET visible_at=? WHERE seq=? AND lease_token=?",
            time.time() + seconds,
        )

    async def depth(self, queue: str) -> QueueDepth:
        def count() -> QueueDepth:
            conn = self._conn
            assert conn is not None
            self._require_queue(conn, queue)
            ready, in_flight, delayed = conn.execute(
                "SELECT COALESCE(SUM(visible_at<=?1),0),"
                " COALESCE(SUM(visible_at>?1 AND lease_token IS NOT NULL),0),"
                " COALESCE(SUM(visible_at>?1 AND lease_token IS NULL),0) FROM messages WHERE queue=?2",
                (time.time(), queue),
            ).fetchone()
            return QueueDepth(ready=ready, in_flight=in_flight, delayed=delayed)

        return await self._run(count)
