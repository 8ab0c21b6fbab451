"""Spans of the controller: one per reconcile of an actor Deployment (off unless ``OTEL_*`` says where to export).

The controller handles no envelopes, so its traces stand alone: a span ``reconcile <namespace>/<name>``
with the outcome, created queues and drift show up next to the actors' traces in the same backend.
Dropped spans are counted in ``asya_trace_spans_dropped_total`` on the controller's ``/metrics``.
"""

from __future__ import annotations

from typing import Any, Awaitable, TypeVar

from prometheus_client import REGISTRY

from asya_common.otel import TracingSettings, create_provider, drop_counter, shutdown_provider

T = TypeVar("T")


class ControllerTracer:
    """Wraps controller work in spans; free when tracing is off.

    Args:
        settings: Parsed ``OTEL_*`` settings (None = off).
        registry: Where the dropped-spans counter goes (the controller's default registry).
    """

    def __init__(self, settings: TracingSettings | None, registry: Any = REGISTRY):
        dropped = drop_counter(registry)
        self._provider = create_provider(settings, "asya-controller", dropped) if settings else None
        self._tracer = self._provider.get_tracer("asya.controller") if self._provider is not None else None

    @property
    def enabled(self) -> bool:
        """True when spans are exported."""
        return self._tracer is not None

    async def traced(self, name: str, work: Awaitable[T], **attributes: Any) -> T:
        """Awaits ``work`` inside a span ``name``; an exception is recorded with its type and re-raised."""
        if self._tracer is None:
            return await work
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            try:
                return await work
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                raise

    async def close(self) -> None:
        """Exports what it can within a few seconds."""
        await shutdown_provider(self._provider)
