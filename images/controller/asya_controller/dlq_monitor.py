"""DLQ bookkeeping: depth and oldest-message age of every managed actor's DLQ, and an Event when it grows.

Runs only on the leader, every ``ASYA_CONTROLLER_DLQ_INTERVAL``. Depth comes from
``Transport.depth``; the age from peeking a few messages (see :mod:`asya_common.dlq`) through a
short-lived transport: consumer-based brokers (RabbitMQ) keep a subscription per received queue, and a
long-lived one on a DLQ would hold its messages away from ``asya dlq redrive``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from asya_common import dlq
from asya_common.transport import QueueNotFound, Transport, TransportSettings, create_transport
from asya_controller.actor import ActorRef
from asya_controller.events import EventRecorder
from asya_controller.metrics import DLQ_DEPTH, DLQ_OLDEST_AGE, QUEUE_DEPTH
from asya_controller.reconciler import Reconciler

log = structlog.get_logger()


class DLQMonitor:
    """Measures every DLQ the reconciler manages."""

    def __init__(self, transport: Transport, settings: TransportSettings, reconciler: Reconciler,
                 events: EventRecorder, interval: float, status_db: str = ""):
        self._transport = transport
        self._settings = settings
        self._reconciler = reconciler
        self._events = events
        self._interval = interval
        self._last: dict[ActorRef, tuple[str, int]] = {}
        self._errors: dict[ActorRef, str] = {}
        self._status_db = status_db  # ASYA_STATUS_DB: DLQ'd envelopes are recorded dead_lettered there
        self._store: Any = None
        self._queues: dict[ActorRef, str] = {}

    async def run(self) -> None:
        """Measures forever, one round per interval."""
        while True:
            await self.measure_all()
            await asyncio.sleep(self._interval)

    async def measure_all(self) -> None:
        """One round over the current actors; drops the gauges of actors that are gone."""
        actors = dict(self._reconciler.actors)
        for ref in [r for r in self._last if r not in actors]:
            queue, _ = self._last.pop(ref)
            for gauge in (DLQ_DEPTH, DLQ_OLDEST_AGE):
                try:
                    gauge.remove(ref.namespace, ref.actor, queue)
                except KeyError:
                    pass
            try:  # the actor queue's depth (dashboards: queue depth vs replicas)
                QUEUE_DEPTH.remove(ref.namespace, ref.actor, self._queues.pop(ref))
            except KeyError:
                pass
        for ref, spec in actors.items():
            try:
                await asyncio.wait_for(self._measure(ref, spec.dlq), 30)
            except asyncio.CancelledError:
                raise
            except QueueNotFound:
                pass  # deleted by hand: the next resync recreates it
            except Exception as exc:  # noqa: BLE001 - bookkeeping must never stop the leader's other loops
                error = f"{type(exc).__name__}: {exc}"
                if self._errors.get(ref) != error:  # once per distinct error, not every interval
                    self._errors[ref] = error
                    log.warning("dlq_measure_failed", actor=ref.actor, dlq=spec.dlq, error=error)
            else:
                self._errors.pop(ref, None)

    async def _status_store(self) -> Any:
        if self._store is None:
            from asya_common.status import open_store

            self._store = await asyncio.to_thread(open_store, self._status_db)
        return self._store

    async def _measure(self, ref: ActorRef, queue: str) -> None:
        spec = self._reconciler.actors.get(ref)
        if spec is not None:
            QUEUE_DEPTH.labels(ref.namespace, ref.actor, spec.queue.name).set(
                (await self._transport.depth(spec.queue.name)).total)
            self._queues[ref] = spec.queue.name
        depth = (await self._transport.depth(queue)).total
        age = None
        if depth:
            async with create_transport(self._settings) as peeker:
                age = await dlq.oldest_age(peeker, queue)
                if self._status_db and depth != self._last.get(ref, (queue, 0))[1]:
                    await dlq.record_dead_letters(peeker, await self._status_store(), queue)
        labels = (ref.namespace, ref.actor, queue)
        DLQ_DEPTH.labels(*labels).set(depth)
        DLQ_OLDEST_AGE.labels(*labels).set(age or 0.0)
        _, before = self._last.get(ref, (queue, 0))
        self._last[ref] = (queue, depth)
        if depth > before:
            await self._events.record(
                ref, "DeadLetters", f"{queue} grew from {before} to {depth} message(s); inspect with "
                f"`asya dlq show {ref.actor}`, replay with `asya dlq redrive {ref.actor}`", warning=True)
