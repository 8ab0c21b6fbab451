"""Prometheus metrics of one gateway (its own registry, so tests can run several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """Counters and gauges served on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("asya_gateway_requests_total", "HTTP requests by route and status code",
                                ["route", "code"], registry=r)
        self.latency = Histogram("asya_gateway_request_seconds", "HTTP request time (SSE: until headers)",
                                 ["route"], registry=r)
        self.submitted = Counter("asya_gateway_submitted_total", "Envelopes accepted and published", ["tool"],
                                 registry=r)
        self.publish_failures = Counter("asya_gateway_publish_failures_total",
                                        "Submissions whose first publish failed (record marked failed)", registry=r)
        self.resumed = Counter("asya_gateway_resumed_total", "Paused envelopes resumed", registry=r)
        self.sse_clients = Gauge("asya_gateway_sse_clients", "Open SSE streams", registry=r)
        self.sse_events = Counter("asya_gateway_sse_events_total", "Events sent over SSE", ["kind"], registry=r)
