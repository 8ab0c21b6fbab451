"""Progress and events into the status store: ``running``, ``spawned``, ``fly`` (batched) and ``paused``.

``ASYA_STATUS_DB`` names the store (a SQLite path in ``asya dev``; a ``postgresql://`` URL, from a
Secret, in Kubernetes). ``running``, ``spawned`` and ``fly`` go through one bounded in-memory queue
that a background task writes in batches (one transaction per batch), so a slow or unreachable
store never delays a call or an ack: when the queue is full, new items are dropped and counted in
``asya_sidecar_fly_dropped_total``. Before a call's outputs are published the processor waits a
bounded time (``ASYA_EVENTS_FLUSH_TIMEOUT``) for that queue to drain, so a stream sees every chunk
before the final event. ``paused`` is written synchronously: the input is acked only after the
parked envelope is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from asya_common import envelope as env
from asya_common.status import FLY, RUNNING, SPAWNED, Event, open_store
from asya_common.status.pause import expire_pauses

_WRITE_ATTEMPTS = 3


class StoreEvents:
    """The sidecar's writer of progress events (the processor's ``ProgressReporter``).

    Args:
        location: ``ASYA_STATUS_DB``: a SQLite path or a ``postgresql://`` URL.
        actor: This sidecar's actor.
        registry: Prometheus registry for the writer's metrics.
        log: Bound structlog logger.
        queue_size: Items buffered before new ones are dropped.
        batch_size: Most items per transaction.
        flush_timeout: Longest wait in :meth:`flush`.
    """

    def __init__(self, location: str, actor: str, registry: CollectorRegistry, log: Any, *, queue_size: int = 10000,
                 batch_size: int = 500, flush_timeout: float = 1.0):
        self.location, self.actor, self.log = location, actor, log
        self.batch_size, self.flush_timeout = batch_size, flush_timeout
        self.store: Any = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue(queue_size)
        self._enqueued = self._done = 0
        self._progress = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._terminal = actor in env.TERMINAL_ACTORS
        self.dropped = Counter("asya_sidecar_fly_dropped", "Events (mostly FLY chunks) not written to the status "
                               "store: writer queue full or store unreachable", ["actor", "kind"], registry=registry)
        self.written = Counter("asya_sidecar_events_written", "Events written to the status store", ["actor"],
                               registry=registry).labels(actor)
        self.queued = Gauge("asya_sidecar_events_queued", "Events waiting for the background writer", ["actor"],
                            registry=registry).labels(actor)

    async def start(self) -> "StoreEvents":
        """Opens (and migrates) the store and starts the background writer."""
        self.store = await asyncio.to_thread(open_store, self.location)
        self._task = asyncio.create_task(self._writer(), name="status-events-writer")
        return self

    def _put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
            self._enqueued += 1
            self.queued.set(self._queue.qsize())
        except asyncio.QueueFull:
            self.dropped.labels(self.actor, event.kind).inc()

    def running(self, envelope_id: str, actor: str, data: dict[str, Any] | None = None) -> None:
        """Queues ``running`` with the hop's ``data`` (attempt, queue wait, trace ids; the crew's own hops are
        not progress: skipped)."""
        if not self._terminal:
            self._put(Event(0, None, envelope_id, RUNNING, actor, data, time.time()))

    async def spawned(self, parent_id: str, child_ids: list[str], actor: str) -> None:
        """Queues ``spawned``: the children are registered under the parent (and its root)."""
        self._put(Event(0, None, parent_id, SPAWNED, actor, {"children": list(child_ids)}, time.time()))

    def fly(self, envelope_id: str, actor: str, data: Any) -> None:
        """Queues one FLY chunk; never waits (a full queue drops it and counts the drop)."""
        self._put(Event(0, None, envelope_id, FLY, actor, data, time.time()))

    async def flush(self, timeout: float | None = None) -> bool:
        """Waits (at most ``timeout``, default ``flush_timeout``) until everything queued so far is written."""
        target = self._enqueued
        async with self._progress:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait_for(lambda: self._done >= target),
                                       self.flush_timeout if timeout is None else timeout)
            return self._done >= target

    async def park(self, envelope: dict[str, Any], spec: dict[str, Any], actor: str) -> bool:
        """Writes a pause durably (after the call's queued chunks); True when newly parked."""
        await self.flush()
        return await asyncio.to_thread(self.store.park, envelope, spec, actor)

    async def expire(self, transport: Any, queue_prefix: str) -> list[str]:
        """Ends this store's expired pauses (exactly once across every sidecar and gateway)."""
        return await expire_pauses(self.store, transport, queue_prefix=queue_prefix)

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for attempt in range(1, _WRITE_ATTEMPTS + 1):
                try:
                    await asyncio.to_thread(self.store.record_progress, batch)
                    self.written.inc(len(batch))
                    break
                except Exception as exc:  # noqa: BLE001 - the store is best effort for progress
                    if attempt == _WRITE_ATTEMPTS:
                        self.log.warning("status store unreachable; events dropped", error=str(exc), count=len(batch))
                        for event in batch:
                            self.dropped.labels(self.actor, event.kind).inc()
                    else:
                        await asyncio.sleep(0.2 * attempt)
            self.queued.set(self._queue.qsize())
            async with self._progress:
                self._done += len(batch)
                self._progress.notify_all()

    async def close(self, timeout: float = 5.0) -> None:
        """Writes what is queued (at most ``timeout``), then stops the writer and closes the store."""
        if self._task is not None:
            await self.flush(timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.store is not None:
            self.store.close()
