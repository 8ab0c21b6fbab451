"""Prometheus metrics of one sidecar; every series carries the ``actor`` label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class SidecarMetrics:
    """The sidecar's counters, gauges and histograms, registered in ``registry``."""

    def __init__(self, actor: str, registry: CollectorRegistry):
        labels = ["actor"]
        self.received = Counter("asya_messages_received", "Messages received from the actor queue", labels,
                                registry=registry).labels(actor)
        self._outcomes = Counter(
            "asya_messages_processed",
            "Messages finished by outcome: succeeded, retried, failed, malformed, route_mismatch, returned, deferred",
            [*labels, "outcome"], registry=registry)
        self._published = Counter("asya_messages_published", "Envelopes published, by destination actor",
                                  [*labels, "destination"], registry=registry)
        self.in_flight = Gauge("asya_messages_in_flight", "Messages being processed now", labels,
                               registry=registry).labels(actor)
        self.handler_seconds = Histogram("asya_handler_duration_seconds", "Runtime call duration", labels,
                                         buckets=_LATENCY_BUCKETS, registry=registry).labels(actor)
        self.queue_wait_seconds = Histogram("asya_queue_wait_seconds", "Time from publish to receive", labels,
                                            buckets=_LATENCY_BUCKETS, registry=registry).labels(actor)
        self.publish_seconds = Histogram("asya_publish_duration_seconds",
                                         "Time to durably publish all outputs (with the ack when all go to one queue)",
                                         labels, buckets=_LATENCY_BUCKETS, registry=registry).labels(actor)
        self._restarts = Counter("asya_runtime_restarts", "Runtime restarts requested by the sidecar",
                                 [*labels, "reason"], registry=registry)
        self._errors = Counter("asya_handler_errors", "Processing errors by type (each failed attempt counts once)",
                               [*labels, "type"], registry=registry)
        self.fly_chunks = Counter("asya_fly_chunks", "Partial results streamed by the handler", labels,
                                  registry=registry).labels(actor)
        self._actor = actor
        self._children: dict[tuple[int, str], object] = {}

    def outcome(self, outcome: str) -> None:
        """Counts one finished message."""
        self._child(self._outcomes, outcome).inc()

    def published(self, destination: str) -> None:
        """Counts one envelope published to ``destination``'s queue."""
        self._child(self._published, destination).inc()

    def _child(self, metric, label: str):
        """The labelled series, looked up once (``labels()`` takes a lock and builds a key every call)."""
        key = (id(metric), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self._actor, label)
        return child

    def error(self, error_type: str) -> None:
        """Counts one failed attempt by its error type (``ValueError``, ``ActorTimeout``, ``mod.MyError``)."""
        self._errors.labels(self._actor, error_type).inc()

    def restart(self, reason: str) -> None:
        """Counts one runtime restart."""
        self._restarts.labels(self._actor, reason).inc()
