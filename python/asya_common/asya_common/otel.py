"""OpenTelemetry set-up shared by the sidecar, controller and gateway (never the stdlib-only runtime).

Tracing is off unless an OTLP endpoint is configured with the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); they are parsed once into
:class:`TracingSettings` like every ``ASYA_*`` setting. Exporting never blocks or fails message
processing: spans go through a ``BatchSpanProcessor`` with a bounded queue, exported by its own
thread, and every span that is dropped (queue full, backend down) is counted in the Prometheus
counter ``asya_trace_spans_dropped_total{reason}``.

The OpenTelemetry packages are imported only when tracing is on, so a process without them (or
with tracing off) pays nothing. Install them with the ``tracing`` extra of the sidecar/controller.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

from asya_common.settings import Duration, env_field

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TracingSettings:
    """The standard OpenTelemetry variables this project honours (see docs/operations.md)."""

    endpoint: str = env_field("OTEL_EXPORTER_OTLP_ENDPOINT", default="",
                              help="OTLP/HTTP base URL (…:4318); tracing is off when empty")
    traces_endpoint: str = env_field("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="",
                                     help="full OTLP/HTTP traces URL (wins over the base URL)")
    protocol: str = env_field("OTEL_EXPORTER_OTLP_PROTOCOL", default="http/protobuf",
                              help="only http/protobuf is supported")
    headers: str = env_field("OTEL_EXPORTER_OTLP_HEADERS", default="", help="k=v,k2=v2 sent with every export")
    exporter: str = env_field("OTEL_TRACES_EXPORTER", default="otlp", help="otlp | none")
    disabled: bool = env_field("OTEL_SDK_DISABLED", default=False, help="true turns tracing off")
    service_name: str = env_field("OTEL_SERVICE_NAME", default="", help="defaults to the actor/component name")
    export_timeout: Duration = env_field("OTEL_EXPORTER_OTLP_TIMEOUT_SECONDS", default=Duration(5.0),
                                         help="give up one export after this long")
    max_queue_size: int = env_field("OTEL_BSP_MAX_QUEUE_SIZE", default=2048,
                                    help="spans buffered before new ones are dropped")
    schedule_delay_ms: int = env_field("OTEL_BSP_SCHEDULE_DELAY", default=1000, help="ms between exports")
    max_export_batch_size: int = env_field("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", default=512, help="spans per export")

    def __post_init__(self) -> None:
        if self.protocol not in ("http/protobuf", ""):
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={self.protocol!r} is not supported (use http/protobuf)")
        if self.max_queue_size < 1 or self.max_export_batch_size < 1:
            raise ValueError("OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be >= 1")

    @property
    def enabled(self) -> bool:
        """True when spans are to be exported."""
        return not self.disabled and self.exporter != "none" and bool(self.endpoint or self.traces_endpoint)

    @property
    def url(self) -> str:
        """The URL spans are POSTed to."""
        return self.traces_endpoint or self.endpoint.rstrip("/") + "/v1/traces"


def parse_traceparent(value: Any) -> tuple[str, str] | None:
    """Returns ``(trace_id, span_id)`` of a valid W3C ``traceparent``, or None (stdlib only)."""
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT_RE.match(value.strip())
    if not match or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return None
    return match.group(2), match.group(3)


_COUNTERS: dict[int, tuple[Any, Any]] = {}


def drop_counter(registry: Any) -> Any:
    """``asya_trace_spans_dropped_total{reason}`` in ``registry``, registered once per registry (always, so
    dashboards see 0)."""
    from prometheus_client import Counter

    known = _COUNTERS.get(id(registry))
    if known is not None and known[0] is registry:
        return known[1]
    counter = Counter("asya_trace_spans_dropped", "Spans not exported: queue_full or export_failed", ["reason"],
                      registry=registry)
    _COUNTERS[id(registry)] = (registry, counter)
    return counter


def _parse_headers(raw: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in raw.split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def create_provider(settings: TracingSettings, service_name: str, dropped: Any,
                    attributes: dict[str, str] | None = None) -> Any:
    """Builds a TracerProvider exporting OTLP/HTTP in the background, or None when tracing is off.

    Args:
        settings: Parsed tracing settings.
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` is set.
        dropped: The counter from :func:`drop_counter`.
        attributes: Extra resource attributes (``asya.actor``...).
    """
    if not settings.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    # The SDK logs every dropped span and failed export; the counter says it once, without flooding stderr.
    for name in ("opentelemetry.sdk._shared_internal", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.exporter.otlp.proto.http"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    class CountingExporter(OTLPSpanExporter):
        def export(self, spans: Sequence[Any]) -> Any:
            try:
                result = super().export(spans)
            except Exception:  # noqa: BLE001 - never let an export error escape the worker thread
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                dropped.labels("export_failed").inc(len(spans))
            return result

    class BoundedProcessor(BatchSpanProcessor):
        def on_end(self, span: Any) -> None:
            queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
            if queue is not None and len(queue) >= settings.max_queue_size:
                dropped.labels("queue_full").inc()
            super().on_end(span)

    resource = Resource.create({"service.name": settings.service_name or service_name, **(attributes or {})})
    provider = TracerProvider(resource=resource)
    exporter = CountingExporter(endpoint=settings.url, headers=_parse_headers(settings.headers) or None,
                                timeout=float(settings.export_timeout))
    provider.add_span_processor(BoundedProcessor(
        exporter, max_queue_size=settings.max_queue_size, schedule_delay_millis=settings.schedule_delay_ms,
        max_export_batch_size=min(settings.max_export_batch_size, settings.max_queue_size)))
    return provider


async def shutdown_provider(provider: Any, timeout: float = 3.0) -> None:
    """Flushes what it can within ``timeout`` seconds and never waits longer (backend down)."""
    if provider is None:
        return
    try:
        await asyncio.wait_for(asyncio.to_thread(provider.shutdown), timeout)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - the export thread is a daemon; exit anyway
        pass
