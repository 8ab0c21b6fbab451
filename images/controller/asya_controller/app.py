"""Wires the controller together: health server, API client, transport, leader election, and the loops.

Only the Lease holder runs the watch, the reconcile worker and the DLQ monitor. Losing the Lease ends
the process (exit code 1) so that Kubernetes restarts it as a fresh candidate — the same choice
client-go makes — instead of risking two replicas acting at once.
"""

from __future__ import annotations

import asyncio
import signal
import time

import structlog

from asya_common.health import HealthServer
from asya_common.transport import Transport, TransportError, TransportSettings, create_transport
from asya_controller.events import EventRecorder
from asya_controller.kube import KubeClient
from asya_controller.leader import LeaderElector
from asya_controller.metrics import RECONCILES
from asya_controller.dlq_monitor import DLQMonitor
from asya_controller.reconciler import Reconciler, RetryLater
from asya_controller.settings import ControllerSettings
from asya_common.otel import TracingSettings
from asya_controller.tracing import ControllerTracer
from asya_controller.watcher import Backoff, DeploymentWatcher, WorkQueue

log = structlog.get_logger()


class Controller:
    """One controller replica."""

    def __init__(self, settings: ControllerSettings, transport_settings: TransportSettings,
                 tracing_settings: TracingSettings | None = None):
        self.settings = settings
        self.tracer = ControllerTracer(tracing_settings)
        self.transport_settings = transport_settings
        self.transport: Transport | None = None
        self.kube: KubeClient | None = None
        self.queue = WorkQueue()
        self.watcher: DeploymentWatcher | None = None
        self.reconciler: Reconciler | None = None
        self._heartbeat = time.monotonic()
        self._connected = False

    def liveness(self) -> tuple[bool, str]:
        """Alive while the event loop keeps beating."""
        age = time.monotonic() - self._heartbeat
        return age < 30, f"event loop heartbeat {age:.1f}s ago"

    def readiness(self) -> tuple[bool, str]:
        """Ready once connected to the API server and the broker."""
        return self._connected, "connected" if self._connected else "connecting"

    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(2)

    async def _connect_transport(self) -> Transport:
        backoff = Backoff(first=1.0, cap=30.0)
        while True:
            transport = create_transport(self.transport_settings)
            try:
                await transport.connect()
                return transport
            except (TransportError, OSError) as exc:
                delay = backoff.next()
                log.warning("transport_connect_failed", transport=transport.name, error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _work(self) -> None:
        """Reconciles queued keys one at a time, retrying failures with per-key backoff."""
        assert self.reconciler is not None
        backoffs: dict = {}
        while True:
            key, obj, deleted = await self.queue.get()
            try:
                await self.tracer.traced(f"reconcile {'/'.join(key)}", self.reconciler.reconcile(obj, deleted),
                                         deleted=deleted)
                backoffs.pop(key, None)
                RECONCILES.labels("ok").inc()
            except RetryLater as exc:
                delay = backoffs.setdefault(key, Backoff(first=1.0, cap=60.0)).next()
                RECONCILES.labels("retry").inc()
                log.warning("reconcile_retry", deployment="/".join(key), error=str(exc), retry_in=round(delay, 1))
                self.queue.add_after(key, delay)
            except Exception:  # a bug must not stop the other actors' reconciles
                RECONCILES.labels("error").inc()
                log.exception("reconcile_failed", deployment="/".join(key))
                self.queue.add_after(key, 30.0)

    async def run(self) -> int:
        """Runs until SIGTERM/SIGINT (exit 0) or lost leadership (exit 1)."""
        s = self.settings
        health = HealthServer(s.metrics_port, self.liveness, self.readiness, host=s.metrics_host).start()
        log.info("starting", identity=s.identity, namespaces=list(s.namespaces) or "all",
                 transport=self.transport_settings.kind, metrics_port=health.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        beat = asyncio.create_task(self._beat())
        elector = None
        try:
            self.kube = await KubeClient.create(s.kubeconfig)
            self.transport = await self._connect_transport()
            self._connected = True
            events = EventRecorder(self.kube, s.identity)
            self.reconciler = Reconciler(self.kube, self.transport, events, s.cleanup_timeout)
            self.watcher = DeploymentWatcher(self.kube, self.queue, tuple(s.namespaces), s.resync)
            elector = LeaderElector(self.kube, s.lease_namespace, s.lease_name, s.identity, s.lease_duration)
            acquire = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                acquire.cancel()
                return 0
            monitor = DLQMonitor(self.transport, self.transport_settings, self.reconciler, events, s.dlq_interval,
                                 status_db=s.status_db)
            tasks = [asyncio.create_task(c) for c in
                     (elector.hold(), self.watcher.run(), self._work(), monitor.run())]
            done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if stop.is_set():
                return 0
            failed = next(t for t in done if t is not stopping)
            log.error("stopping", error=repr(failed.exception()))
            return 1
        finally:
            beat.cancel()
            if elector is not None:
                await elector.release()
            if self.transport is not None:
                await self.transport.close()
            if self.kube is not None:
                await self.kube.close()
            await self.tracer.close()
            health.stop()
            log.info("stopped")
