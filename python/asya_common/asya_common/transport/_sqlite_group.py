"""Group commit for the embedded SQLite queue: writes queued together share one transaction and one fsync.

Every lease (receive), send, ack, nack and lease extension is a write transaction, and all processes of a
dev mesh take turns on the one write lock of the database file; a commit's cost is the lock turn and the
WAL sync, not the SQL. With several messages in flight (``ASYA_CONCURRENCY``) the writes queue behind each
other on the transport's one database thread; :class:`GroupCommit` runs all writes waiting at that moment
in one ``BEGIN IMMEDIATE ... COMMIT``, each inside its own SAVEPOINT, so a write that fails (a lost lease,
a missing queue) is rolled back alone and raises to its own caller. No caller returns before the COMMIT
that contains its write, so "sent" and "acked" still mean "committed".

A write may come with a *peek*, a read run before the transaction (WAL readers never wait): a receive
peeks whether its queue has a visible message and takes the write lock only when it has, and a receive
cancelled before its batch starts leases nothing. One executor job runs the whole batch, and its answers
go back to each event loop in one wake-up.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from typing import Any, Callable

Body = Callable[[sqlite3.Connection], Any]
#: A peek returns None to go on with the write, or the caller's answer (the write is then skipped).
Peek = Callable[[sqlite3.Connection], Any]


class GroupCommit:
    """Batches write transactions of one connection (used from its single executor thread).

    Args:
        conn: Returns the open connection (None when closed).
    """

    def __init__(self, conn: Callable[[], sqlite3.Connection | None]):
        self._conn = conn
        self._queue: deque[tuple[Body, Peek | None, asyncio.Future]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def submit(self, body: Body, future: asyncio.Future, peek: Peek | None = None) -> bool:
        """Queues one write; returns True when the caller must schedule :meth:`drain` on the executor."""
        with self._lock:
            self._queue.append((body, peek, future))
            if self._scheduled:
                return False
            self._scheduled = True
            return True

    def drain(self) -> None:
        """Runs every queued write in one transaction (executor thread) and settles their futures."""
        with self._lock:
            batch, self._scheduled = list(self._queue), False
            self._queue.clear()
        outcomes: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        conn = self._conn()
        try:
            if conn is None:
                raise sqlite3.ProgrammingError("the queue database is closed")
            todo = []
            for i, (body, peek, future) in enumerate(batch):
                if peek is not None and future.done():  # a cancelled receive: lease nothing for nobody
                    outcomes[i] = (True, None)
                    continue
                if peek is not None:
                    try:
                        answer = peek(conn)
                    except Exception as exc:  # noqa: BLE001 - this caller's error alone
                        outcomes[i] = (False, exc)
                        continue
                    if answer is not None:
                        outcomes[i] = (True, answer)
                        continue
                todo.append(i)
            if todo:
                self._commit(conn, batch, todo, outcomes)
        except Exception as exc:  # noqa: BLE001 - nothing of the batch is durable: every caller gets the error
            outcomes = [(False, exc)] * len(batch)
        _settle_all([future for _, _, future in batch], outcomes)

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list, todo: list[int], outcomes: list[tuple[bool, Any]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if len(todo) == 1:  # alone in its transaction: a failure rolls back the transaction
                i = todo[0]
                try:
                    outcomes[i] = (True, batch[i][0](conn))
                except Exception as exc:  # noqa: BLE001 - this write alone fails
                    conn.execute("ROLLBACK")
                    outcomes[i] = (False, exc)
                    return
            else:
                for i in todo:
                    conn.execute("SAVEPOINT asya_write")
                    try:
                        outcomes[i] = (True, batch[i][0](conn))
                        conn.execute("RELEASE asya_write")
                    except Exception as exc:  # noqa: BLE001 - this write alone fails; the others commit
                        conn.execute("ROLLBACK TO asya_write")
                        conn.execute("RELEASE asya_write")
                        outcomes[i] = (False, exc)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT can leave the transaction open: never reuse it
                conn.execute("ROLLBACK")
            raise

    def abandon(self, exc: BaseException) -> None:
        """Fails every queued write (the executor refused the drain job: the transport is closing)."""
        with self._lock:
            batch, self._scheduled = list(self._queue), False
            self._queue.clear()
        for _, _, future in batch:
            if not future.done():
                future.set_exception(exc)


def _settle_all(futures: list[asyncio.Future], outcomes: list[tuple[bool, Any]]) -> None:
    """Hands every answer to its event loop: one ``call_soon_threadsafe`` (one wake-up) per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, bool, Any]]] = {}
    for future, (ok, value) in zip(futures, outcomes):
        by_loop.setdefault(future.get_loop(), []).append((future, ok, value))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the caller's event loop is closed: nobody waits for these answers
            pass


def _settle(items: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # the caller was cancelled; its write is committed or not, as with any transaction
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
