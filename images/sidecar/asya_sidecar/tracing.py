"""One OpenTelemetry span per hop: receive -> runtime call -> publish -> ack (the phases are span events).

The processor calls a handful of small hooks; all tracing logic lives here. Each message is
processed in its own asyncio task, so the hop of the message being processed is kept in a context
variable. The hop span continues the W3C ``traceparent``/``tracestate`` found in the envelope
headers (a caller's, or the previous hop's); a missing one starts a trace, a malformed one starts a
new trace and is logged. Before the runtime call the envelope's ``traceparent`` is set to the hop
span, so handler log lines carry ``trace_id``/``span_id`` and every output continues the trace.
Fan-out children get one child span each under the hop, and their envelopes carry that span.

With tracing off (the default) :class:`NoTracer` makes every hook free. Nothing here can fail
message processing: export runs in a background thread with a bounded queue.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any, Awaitable, Callable

from asya_common import envelope as env
from asya_common.otel import (TRACEPARENT, TRACESTATE, TracingSettings, create_provider, drop_counter, parse_traceparent,
                              shutdown_provider)

_current: contextvars.ContextVar["Hop | None"] = contextvars.ContextVar("asya_hop", default=None)


class Hop:
    """What is known about the message being processed: its span and counters."""

    __slots__ = ("received_ns", "size", "span", "envelope_id", "outcome", "fly_chunks")

    def __init__(self, size: int):
        self.received_ns = time.time_ns()
        self.size = size
        self.span: Any = None
        self.envelope_id: str | None = None
        self.outcome: str | None = None
        self.fly_chunks = 0


class NoTracer:
    """Tracing off: every hook does nothing and costs (almost) nothing."""

    enabled = False

    def __init__(self, registry: Any = None):
        if registry is not None:
            drop_counter(registry)

    def run(self, message: Any, coro: Awaitable[None]) -> Awaitable[None]:
        return coro

    def envelope(self, envelope: dict[str, Any]) -> None:
        pass

    def counting_fly(self, on_fly: Callable[[Any], None]) -> Callable[[Any], None]:
        return on_fly

    async def call(self, answer: Awaitable[dict]) -> dict:
        return await answer

    async def publish(self, queue: str, count: int, send: Awaitable[None]) -> None:
        await send

    def outputs(self, outputs: list[dict[str, Any]]) -> None:
        pass

    def event(self, name: str, **attributes: Any) -> None:
        pass

    def error(self, error: dict[str, Any]) -> None:
        pass

    def watch(self, metrics: Any) -> None:
        pass

    async def close(self) -> None:
        pass


class HopTracer(NoTracer):
    """Tracing on: spans exported over OTLP/HTTP by a background thread.

    Args:
        settings: Parsed ``OTEL_*`` settings (enabled).
        actor: This sidecar's actor (the default ``service.name``).
        queue: The queue it consumes.
        registry: Prometheus registry for the dropped-spans counter.
        log: Bound structlog logger.
    """

    enabled = True

    def __init__(self, settings: TracingSettings, actor: str, queue: str, registry: Any, log: Any):
        from opentelemetry.propagators.textmap import DefaultGetter
        from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = create_provider(settings, actor, drop_counter(registry), {"asya.actor": actor})
        self._tracer = self._provider.get_tracer("asya.sidecar")
        self._propagator, self._getter = TraceContextTextMapPropagator(), DefaultGetter()
        self._kind, self._status, self._code, self._in_context = SpanKind, Status, StatusCode, set_span_in_context
        self._span_of = get_current_span
        self._actor, self._queue, self._log = actor, queue, log

    # -- the hop -------------------------------------------------------------------------
    async def _run(self, message: Any, coro: Awaitable[None]) -> None:
        hop = Hop(len(message.body))
        token = _current.set(hop)
        try:
            await coro
        except BaseException as exc:
            if hop.span is not None:
                hop.span.record_exception(exc)
                hop.span.set_status(self._status(self._code.ERROR, type(exc).__name__))
            raise
        finally:
            _current.reset(token)
            self._end(hop)

    def run(self, message: Any, coro: Awaitable[None]) -> Awaitable[None]:
        """Wraps one message's processing; the hop span ends after the ack (or nack)."""
        return self._run(message, coro)

    def _end(self, hop: Hop) -> None:
        if hop.span is None and hop.outcome in ("malformed",):  # not an envelope: a trace of its own
            hop.span = self._tracer.start_span(f"process {self._actor}", kind=self._kind.CONSUMER,
                                               start_time=hop.received_ns, attributes=self._attributes(hop))
        if hop.span is None:
            return
        hop.span.set_attribute("asya.outcome", hop.outcome or "unknown")
        hop.span.set_attribute("asya.fly_chunks", hop.fly_chunks)
        if hop.outcome in ("failed", "malformed", "route_mismatch"):
            hop.span.set_status(self._status(self._code.ERROR, hop.outcome))
        hop.span.end()

    def _attributes(self, hop: Hop) -> dict[str, Any]:
        return {"asya.actor": self._actor, "messaging.destination.name": self._queue,
                "messaging.message.body.size": hop.size, "asya.payload_size": hop.size}

    def envelope(self, envelope: dict[str, Any]) -> None:
        """Starts the hop span as a child of the envelope's trace context and hands the span on."""
        hop = _current.get()
        if hop is None or hop.span is not None:
            return
        headers = envelope.setdefault("headers", {})
        not_before = headers.get(env.H_NOT_BEFORE)
        if isinstance(not_before, (int, float)) and not_before - time.time() > 0.05:
            return  # an early retry is put back untouched: no hop
        carrier = {k: v for k, v in headers.items() if k in (TRACEPARENT, TRACESTATE) and isinstance(v, str)}
        parent = self._propagator.extract(carrier, getter=self._getter)
        raw = headers.get(TRACEPARENT)
        malformed = raw is not None and not self._span_of(parent).get_span_context().is_valid
        attempt = headers.get(env.H_ATTEMPT, 1)
        hop.envelope_id = envelope.get("id")
        attributes = {**self._attributes(hop), "asya.envelope_id": str(envelope.get("id")),
                      "asya.attempt": attempt if isinstance(attempt, int) else 1}
        if envelope.get("parent_id"):
            attributes["asya.parent_id"] = str(envelope["parent_id"])
        sent_at = headers.get(env.H_SENT_AT)
        if isinstance(sent_at, (int, float)):
            attributes["asya.queue_wait_ms"] = max(0.0, hop.received_ns / 1e6 - sent_at * 1000)
        hop.span = self._tracer.start_span(f"process {self._actor}", context=None if malformed else parent,
                                           kind=self._kind.CONSUMER, start_time=hop.received_ns,
                                           attributes=attributes)
        if malformed:
            self._log.warning("malformed traceparent header; starting a new trace", envelope_id=envelope.get("id"),
                              traceparent=str(raw)[:200], trace_id=format(hop.span.get_span_context().trace_id, "032x"))
            hop.span.add_event("malformed traceparent", {"traceparent": str(raw)[:200]})
            headers.pop(TRACESTATE, None)
        if isinstance(attempt, int) and attempt > 1:
            hop.span.add_event("retry", {"asya.attempt": attempt})
        self._inject(hop.span, headers)

    def _inject(self, span: Any, headers: dict[str, Any]) -> None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        headers.update(carrier)

    # -- phases --------------------------------------------------------------------------
    def counting_fly(self, on_fly: Callable[[Any], None]) -> Callable[[Any], None]:
        """``on_fly`` that also counts the hop's FLY chunks (call it in the message's task, before the call is sent)."""
        hop = _current.get()
        if hop is None or hop.span is None:
            return on_fly

        def counting(data: Any) -> None:
            hop.fly_chunks += 1
            on_fly(data)
        return counting

    async def call(self, answer: Awaitable[dict]) -> dict:
        """Waits for the runtime's answer, recorded as a ``runtime call`` event on the hop (duration, outputs or
        error type).

        Phases are events, not child spans: one span per hop keeps tracing cheap (docs/operations.md).
        """
        hop = _current.get()
        if hop is None or hop.span is None:
            return await answer
        started = time.perf_counter()
        try:
            frame = await answer
        except BaseException as exc:
            hop.span.add_event("runtime call", {"duration_ms": (time.perf_counter() - started) * 1000,
                                                "error.type": type(exc).__name__})
            raise
        attributes: dict[str, Any] = {"duration_ms": (time.perf_counter() - started) * 1000}
        if frame.get("type") == "error":
            attributes["error.type"] = str((frame.get("error") or {}).get("type", "Error"))
        else:
            attributes["outputs"] = len(frame.get("outputs") or [])
        hop.span.add_event("runtime call", attributes)
        return frame

    async def publish(self, queue: str, count: int, send: Awaitable[None]) -> None:
        """One durable publish (a batch to one queue), as a ``published`` event on the hop."""
        hop = _current.get()
        if hop is None or hop.span is None:
            await send
            return
        started = time.perf_counter()
        await send
        hop.span.add_event("published", {"messaging.destination.name": queue, "messaging.batch.message_count": count,
                                         "duration_ms": (time.perf_counter() - started) * 1000})

    def outputs(self, outputs: list[dict[str, Any]]) -> None:
        """Before publishing: each output continues the trace; fan-out children get a span each."""
        hop = _current.get()
        if hop is None or hop.span is None:
            return
        fan_out = len(outputs) > 1
        for index, output in enumerate(outputs):
            headers = output.setdefault("headers", {})
            if not fan_out:
                headers.pop(TRACESTATE, None)
                self._inject(hop.span, headers)
                continue
            child = self._tracer.start_span(f"fan-out {output.get('id')}", context=self._in_context(hop.span),
                                            kind=self._kind.PRODUCER,
                                            attributes={"asya.envelope_id": str(output.get("id")),
                                                        "asya.fanout_index": index,
                                                        "asya.destination": str(output["route"]["curr"])})
            self._inject(child, headers)
            child.end()
        hop.span.set_attribute("asya.outputs", len(outputs))

    def event(self, name: str, **attributes: Any) -> None:
        """A span event on the hop (``retry``, ``actorTimeout``...)."""
        hop = _current.get()
        if hop is not None and hop.span is not None:
            hop.span.add_event(name, {k: v for k, v in attributes.items() if v is not None})

    def error(self, error: dict[str, Any]) -> None:
        """Records a processing error (with its type) on the hop."""
        hop = _current.get()
        if hop is None or hop.span is None:
            return
        kind = str(error.get("type", "Error"))
        hop.span.set_attribute("error.type", kind)
        hop.span.add_event("exception", {"exception.type": kind, "exception.message": str(error.get("message", ""))[:2000],
                                         "exception.stacktrace": str(error.get("traceback", ""))[:8000]})
        hop.span.set_status(self._status(self._code.ERROR, kind))

    def watch(self, metrics: Any) -> None:
        """Every message ends with exactly one ``metrics.outcome(...)``: the hop's outcome comes from it."""
        counted = metrics.outcome

        def outcome(value: str) -> None:
            counted(value)
            hop = _current.get()
            if hop is not None:
                hop.outcome = value

        metrics.outcome = outcome

    async def close(self) -> None:
        """Exports what it can within a few seconds (never longer: the backend may be down)."""
        await shutdown_provider(self._provider)


def hop_data(envelope: dict[str, Any]) -> dict[str, Any]:
    """What the ``running`` event records about a hop (for ``asya trace``): attempt, queue wait, trace ids.

    Works with tracing off too: the ids are then the caller's ``traceparent``, when there is one.
    """
    headers = envelope.get("headers") or {}
    attempt = headers.get(env.H_ATTEMPT, 1)
    data: dict[str, Any] = {"attempt": attempt if isinstance(attempt, int) else 1}
    sent_at = headers.get(env.H_SENT_AT)
    if isinstance(sent_at, (int, float)):
        data["queue_wait"] = round(max(0.0, time.time() - sent_at), 6)
    ids = parse_traceparent(headers.get(TRACEPARENT))
    if ids:
        data["trace_id"], data["span_id"] = ids
    return data


def create(settings: TracingSettings | None, actor: str, queue: str, registry: Any, log: Any,
           metrics: Any = None) -> NoTracer:
    """The sidecar's tracer: :class:`HopTracer` when an OTLP endpoint is configured, else :class:`NoTracer`."""
    if settings is None or not settings.enabled:
        return NoTracer(registry)
    tracer = HopTracer(settings, actor, queue, registry, log)
    if metrics is not None:
        tracer.watch(metrics)
    log.info("tracing on", endpoint=settings.url)
    return tracer
