"""One tail of the events feed per process, fanned out to any number of subscribers (SSE clients).

The feed reads every new event once, in seq order, and hands each to the subscribers of its root.
SQLite is polled by seq every ``poll_interval``. PostgreSQL wakes the tail with ``LISTEN
asya_events`` (the notification names the new seqs; rows are then read by seq, so a lost or merged
notification loses nothing), with the same poll as a safety net.

``subscribe(root_id, after_seq)`` registers first, then reads the backlog from the store, then
yields live events, skipping any seq it already yielded: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, AsyncIterator

from asya_common.status.model import Event


class EventFeed:
    """Tails the store's events for every subscriber of this process.

    Args:
        store: A :class:`~asya_common.status.store.StatusStore`.
        poll_interval: Seconds between polls (the only wake-up on SQLite; a safety net on PostgreSQL).
        queue_size: Events buffered per subscriber; a subscriber that falls further behind is
            switched to reading the store directly (it loses nothing, it only stops being pushed).
    """

    def __init__(self, store: Any, poll_interval: float = 0.2, queue_size: int = 10000):
        self.store, self.poll_interval, self.queue_size = store, poll_interval, queue_size
        self._subscribers: dict[str, set[asyncio.Queue]] = {}
        self._cursor = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = False  # True once PostgreSQL LISTEN is active

    async def start(self) -> "EventFeed":
        """Starts the tail (idempotent); the feed starts at the current end of the events table."""
        if self._task is None:
            self._cursor = await asyncio.to_thread(self.store.last_seq)
            if getattr(self.store, "dialect", "") == "postgres":
                await self._start_listener()
            self._task = asyncio.create_task(self._tail(), name="asya-event-feed")
        return self

    async def close(self) -> None:
        """Stops the tail and the listener."""
        self._stop.set()
        self._wake.set()  # the tail also ends by itself: Python 3.11's wait_for can swallow a cancel
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, 5)

    async def _start_listener(self) -> None:
        loop = asyncio.get_running_loop()
        ready = threading.Event()

        def listen() -> None:
            """LISTEN until closed; a lost connection is re-opened (polling covers the gap)."""
            while not self._stop.is_set():
                try:
                    conn = self.store._db.listen_connection()
                except Exception:  # noqa: BLE001 - server unreachable: poll meanwhile, retry
                    ready.set()
                    self._stop.wait(1.0)
                    continue
                self.listening = True
                ready.set()
                loop.call_soon_threadsafe(self._wake.set)  # catch up on anything written while not listening
                try:
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            loop.call_soon_threadsafe(self._wake.set)
                except Exception:  # noqa: BLE001 - connection lost: reconnect
                    pass
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        conn.close()

        self._listener = threading.Thread(target=listen, name="asya-event-listen", daemon=True)
        self._listener.start()
        await asyncio.to_thread(ready.wait, 10)

    async def _tail(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the read: a notification that lands during it wakes the next wait at once
            try:
                events = await asyncio.to_thread(self.store.events_since, self._cursor, 1000)
            except Exception:  # noqa: BLE001 - store briefly unreachable: try again next poll
                events = []
            for event in events:
                self._cursor = event.seq
                for queue in list(self._subscribers.get(event.root_id, ())):
                    try:
                        queue.put_nowait(event)
                    except asyncio.QueueFull:
                        self._subscribers[event.root_id].discard(queue)
                        queue.overflowed = True  # type: ignore[attr-defined]
            if len(events) == 1000:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def subscribe(self, root_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """Yields the events of ``root_id`` with seq > ``after_seq``: backlog first, then live, forever.

        The caller stops iterating (e.g. after a final event); leaving the loop unsubscribes.
        """
        await self.start()
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        self._subscribers.setdefault(root_id, set()).add(queue)
        last = after_seq
        try:
            while True:
                backlog = await asyncio.to_thread(self.store.events, root_id, last, 1000)
                for event in backlog:
                    last = event.seq
                    yield event
                if len(backlog) < 1000:
                    break
            while True:
                if getattr(queue, "overflowed", False) and queue.empty():
                    queue = asyncio.Queue(self.queue_size)  # re-register, then catch up from the store
                    self._subscribers.setdefault(root_id, set()).add(queue)
                    for event in await asyncio.to_thread(self.store.events, root_id, last, 100000):
                        last = event.seq
                        yield event
                    continue
                event = await queue.get()
                if event.seq > last:
                    last = event.seq
                    yield event
        finally:
            subscribers = self._subscribers.get(root_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    self._subscribers.pop(root_id, None)
