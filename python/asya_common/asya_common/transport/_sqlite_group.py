"""Group commit for the embedded SQLite queue: writes queued together share one transaction and one fsync.

Every send, ack, nack and lease extension is a write transaction committed with ``synchronous=FULL``,
so its cost is the fsync, not the SQL. With several messages in flight (``ASYA_CONCURRENCY``) the writes
queue behind each other on the transport's one database thread; :class:`GroupCommit` runs all writes
waiting at that moment in one ``BEGIN IMMEDIATE ... COMMIT``, each inside its own SAVEPOINT, so a write
that fails (a lost lease, a missing queue) is rolled back alone and raises to its own caller. No caller
returns before the COMMIT that contains its write, so "sent" and "acked" still mean "on disk".
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from typing import Any, Callable


class GroupCommit:
    """Batches write transactions of one connection (used from its single executor thread).

    Args:
        conn: Returns the open connection (None when closed).
    """

    def __init__(self, conn: Callable[[], sqlite3.Connection | None]):
        self._conn = conn
        self._queue: deque[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def submit(self, body: Callable[[sqlite3.Connection], Any], future: asyncio.Future) -> bool:
        """Queues one write; returns True when the caller must schedule :meth:`drain` on the executor."""
        with self._lock:
            self._queue.append((body, future))
            if self._scheduled:
                return False
            self._scheduled = True
            return True

    def drain(self) -> None:
        """Runs every queued write in one transaction (executor thread) and settles their futures."""
        with self._lock:
            batch, self._scheduled = list(self._queue), False
            self._queue.clear()
        outcomes: list[tuple[bool, Any]] = []
        conn = self._conn()
        try:
            if conn is None:
                raise sqlite3.ProgrammingError("the queue database is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for body, _ in batch:
                    conn.execute("SAVEPOINT asya_write")
                    try:
                        outcomes.append((True, body(conn)))
                        conn.execute("RELEASE asya_write")
                    except Exception as exc:  # noqa: BLE001 - this write alone fails; the others commit
                        conn.execute("ROLLBACK TO asya_write")
                        conn.execute("RELEASE asya_write")
                        outcomes.append((False, exc))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - nothing of the batch is durable: every caller gets the error
            outcomes = [(False, exc)] * len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes):
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the caller's event loop is closed: nobody waits for this answer
                pass

    def abandon(self, exc: BaseException) -> None:
        """Fails every queued write (the executor refused the drain job: the transport is closing)."""
        with self._lock:
            batch, self._scheduled = list(self._queue), False
            self._queue.clear()
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; its write is committed or not, as with any transaction
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
