"""Prometheus counters of the MCP and A2A faces, in the gateway's own registry (served on ``/metrics``).

One counter for both protocols: ``asya_gateway_protocol_calls_total{face, operation, outcome}``, e.g.
``{face="mcp", operation="tools/call", outcome="running"}`` or ``{face="a2a", operation="SendMessage",
outcome="input_required"}``, so a dashboard sees how agents use the gateway and how calls end.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

_COUNTERS: dict[int, Counter] = {}


def calls(registry: CollectorRegistry) -> Counter:
    """The protocol-call counter of ``registry`` (created once per registry)."""
    counter = _COUNTERS.get(id(registry))
    if counter is None:
        counter = Counter("asya_gateway_protocol_calls_total", "MCP and A2A calls by operation and outcome",
                          ["face", "operation", "outcome"], registry=registry)
        _COUNTERS[id(registry)] = counter
    return counter


def count(service: Any, face: str, operation: str, outcome: str) -> None:
    """Counts one call (no-op when the service has no metrics, as in unit use)."""
    metrics = getattr(service, "metrics", None)
    if metrics is not None:
        calls(metrics.registry).labels(face=face, operation=operation, outcome=outcome).inc()
