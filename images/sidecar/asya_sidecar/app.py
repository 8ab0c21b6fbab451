"""The sidecar process: receive loop, bounded concurrency, health endpoints and graceful shutdown.

A single receive loop leases at most as many messages as the sidecar holds (``ASYA_PREFETCH``, or
automatic: ``asya_sidecar.prefetch``); every leased message is being processed at once, and at most
``ASYA_CONCURRENCY`` of them are inside the handler (``MessageProcessor``). On SIGTERM it stops receiving,
lets in-flight messages finish for ``ASYA_SHUTDOWN_GRACE`` and returns the rest to the queue.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from prometheus_client import CollectorRegistry

from asya_common import envelope as env
from asya_common.health import HealthServer
from asya_common.logging import get_logger
from asya_common.otel import TracingSettings
from asya_common.transport import QueueSpec, Transport, TransportError, TransportSettings, create_transport
from asya_sidecar import tracing
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.processor import MessageProcessor
from asya_sidecar.events import StoreEvents
from asya_sidecar.pause import expire_loop
from asya_sidecar.runtime_client import RuntimeClient
from asya_sidecar.settings import RetryPolicy, SidecarSettings


class Sidecar:
    """One actor's sidecar.

    Args:
        settings: Sidecar settings.
        policy: Retry policy.
        transport_settings: Which broker and how to reach it.
        transport: An already-built transport (tests); built from ``transport_settings`` when None.
        registry: Prometheus registry (a fresh one by default, so tests can run several sidecars).
        tracing_settings: ``OTEL_*`` settings; tracing is off when None or without an endpoint.
    """

    def __init__(self, settings: SidecarSettings, policy: RetryPolicy, transport_settings: TransportSettings,
                 transport: Transport | None = None, registry: CollectorRegistry | None = None,
                 tracing_settings: TracingSettings | None = None):
        self.settings, self.policy, self.transport_settings = settings, policy, transport_settings
        self.transport = transport or create_transport(transport_settings)
        self.registry = registry or CollectorRegistry()
        self.metrics = SidecarMetrics(settings.actor, self.registry)
        self.runtime = RuntimeClient(settings.socket_path, settings.runtime_connect_timeout)
        self.queue = env.queue_name(settings.actor, transport_settings.queue_prefix)
        self.log = get_logger(actor=settings.actor)
        self.tracer = tracing.create(tracing_settings, settings.actor, self.queue, self.registry, self.log, self.metrics)
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()  # set when a held message is finished (or on shutdown)
        self._tasks: set[asyncio.Task] = set()
        self._receiving = False
        self.health: HealthServer | None = None

    def _liveness(self) -> tuple[bool, str]:
        return True, "ok"

    def _readiness(self) -> tuple[bool, str]:
        if self._stopping.is_set():
            return False, "shutting down"
        if not self.runtime.connected:
            return False, "runtime not connected"
        return (True, "ok") if self._receiving else (False, "not receiving yet")

    def stop(self) -> None:
        """Asks the sidecar to shut down gracefully (what SIGTERM does)."""
        self._stopping.set()
        self._room.set()  # wakes the receive loop

    async def run(self) -> None:
        """Runs until :meth:`stop` (or SIGTERM), then drains and closes."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass
        self.health = HealthServer(self.settings.metrics_port, self._liveness, self._readiness, self.registry,
                                   host=self.settings.metrics_host).start()
        progress = await StoreEvents(
            self.settings.status_db, self.settings.actor, self.registry, self.log,
            queue_size=self.settings.events_queue_size, flush_timeout=self.settings.events_flush_timeout,
        ).start() if self.settings.status_db else None
        expirer = None
        await self.transport.connect()
        try:
            if self.settings.ensure_queues:
                await self.transport.ensure_queue(QueueSpec(
                    self.queue, env.dlq_name(self.settings.actor, self.transport_settings.queue_prefix),
                    max_receive_count=self.settings.dlq_max_receive_count, lease_seconds=self.settings.lease_seconds))
            await self.runtime.connect()
            if progress is not None and self.settings.pause_expiry_interval > 0 \
                    and self.settings.actor not in env.TERMINAL_ACTORS:
                expirer = asyncio.create_task(expire_loop(progress, self.transport, self.transport_settings.queue_prefix,
                                                          self.settings.pause_expiry_interval, self.log))
            self.log.info("sidecar ready", queue=self.queue, handler=self.runtime.handler,
                          concurrency=self.settings.concurrency, prefetch=self.settings.prefetch or "auto",
                          metrics_port=self.health.port)
            processor = MessageProcessor(self.settings, self.policy, self.transport, self.runtime, self.metrics,
                                         self.log, self.transport_settings.queue_prefix, progress, self.tracer)
            await self._receive_loop(processor)
            await self._drain()
        finally:
            await self.runtime.close()
            await self.transport.close()
            await self.tracer.close()
            if expirer is not None:
                expirer.cancel()
            if progress is not None:
                await progress.close()
            self.health.stop()
            self.log.info("sidecar stopped")

    async def _receive_loop(self, processor: MessageProcessor) -> None:
        held = processor.held
        prefetch = 0
        self._receiving = True
        backoff = 0.5
        while not self._stopping.is_set():
            limit = held.current
            if len(self._tasks) >= limit:
                await self._wait_for_room(limit)
                continue
            try:
                if limit != prefetch:  # RabbitMQ pushes up to its prefetch: keep it at what is held
                    await self.transport.set_prefetch(self.queue, limit)
                    prefetch = limit
                messages = await self.transport.receive(self.queue, max_messages=limit - len(self._tasks),
                                                        wait_seconds=1.0, lease_seconds=self.settings.lease_seconds)
                backoff = 0.5
            except TransportError as exc:
                messages = []
                self.log.error("receive failed; retrying", error=str(exc), retry_in=backoff)
                await self._sleep_unless_stopping(backoff)
                backoff = min(backoff * 2, 30.0)
            for message in messages:
                task = asyncio.create_task(self.tracer.run(message, processor.process(message)),
                                           name=f"process-{message.message_id}")
                self._tasks.add(task)
                task.add_done_callback(self._processed)
        self._receiving = False

    def _processed(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._room.set()
        _log_crash(self.log, task)

    async def _wait_for_room(self, limit: int) -> None:
        """Waits until fewer than ``limit`` messages are held, or shutdown starts."""
        self._room.clear()
        if len(self._tasks) >= limit and not self._stopping.is_set():
            await self._room.wait()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _drain(self) -> None:
        if not self._tasks:
            return
        self.log.info("draining in-flight messages", count=len(self._tasks), grace=self.settings.shutdown_grace)
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_grace)
        for task in pending:
            task.cancel()  # the processor returns the message to the queue on cancellation
        if pending:
            await asyncio.wait(pending, timeout=10)
            self.log.warning("returned unfinished messages to the queue", count=len(pending))


def _log_crash(log: Any, task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("message task crashed; its lease will expire and it will be redelivered",
                  error=f"{type(exc).__name__}: {exc}")
