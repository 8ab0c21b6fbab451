"""One message, end to end: decode, call the runtime, route, publish, and only then ack.

Every path ends in exactly one of: ack after all outputs are durably published (success, retry
scheduled, error-end), nack (returned to the queue: shutdown, runtime restarted, publish failed),
or the lease simply running out (sidecar killed, or a lease lost before the commit that publishes and
acks at once on SQLite). Nothing is acked before its successors exist.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any, Protocol

from asya_common import envelope as env
from asya_common.transport import (AckFailed, LeaseLost, MessageTooLarge, QueueNotFound, ReceivedMessage, Transport,
                                   TransportError)
from asya_sidecar import error_routes, routing
from asya_sidecar import finality
from asya_common.status.model import PauseSpecError
from asya_sidecar import pause
from asya_sidecar.backoff import retry_delay
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.nonretryable import is_non_retryable
from asya_sidecar.handler_calls import HandlerCalls
from asya_sidecar.lease_keeper import LeaseKeeper
from asya_sidecar.runtime_client import RuntimeClient, RuntimeUnavailable
from asya_sidecar.settings import RetryPolicy, SidecarSettings
from asya_sidecar.tracing import NoTracer


class ProgressReporter(Protocol):
    """Where progress goes (the status store in ``asya dev``; the gateway later)."""

    def running(self, envelope_id: str, actor: str, data: dict[str, Any] | None = None) -> None: ...  # never waits

    async def spawned(self, parent_id: str, child_ids: list[str], actor: str) -> None: ...

    # Optional (``asya_sidecar.events.StoreEvents`` has them): fly(envelope_id, actor, data) queues a
    # chunk without waiting, flush() waits a bounded time for queued events, park(envelope, spec, actor)
    # writes a pause durably.


class PublishFailed(RuntimeError):
    """Outputs could not be durably published; the input must not be acked."""


class MessageProcessor:
    """Processes received messages for one actor.

    Args:
        settings: Sidecar settings.
        policy: Retry policy.
        transport: Connected transport.
        runtime: Runtime client.
        metrics: Metrics to update.
        log: Bound structlog logger.
        queue_prefix: Prefix of every queue name.
        progress: Optional progress reporter.
        tracer: Span hooks (``asya_sidecar.tracing``); tracing off when None.
    """

    def __init__(self, settings: SidecarSettings, policy: RetryPolicy, transport: Transport, runtime: RuntimeClient,
                 metrics: SidecarMetrics, log: Any, queue_prefix: str, progress: ProgressReporter | None = None,
                 tracer: NoTracer | None = None):
        self._settings, self._policy, self._transport = settings, policy, transport
        self._metrics, self._log = metrics, log
        self._prefix, self._progress = queue_prefix, progress
        self._tracer = tracer or NoTracer()
        self._terminal = settings.actor in env.TERMINAL_ACTORS
        self._leases = LeaseKeeper(transport, settings.lease_seconds, log)
        self._calls = HandlerCalls(settings, runtime, metrics, log, progress, self._tracer)
        self.held = self._calls.held  # how many messages to hold (the receive loop reads it)

    async def process(self, message: ReceivedMessage) -> None:
        """Handles one leased message; never raises for message-level problems."""
        self._metrics.received.inc()
        self._metrics.in_flight.inc()
        self._leases.hold(message)
        try:
            await self._process(message)
        except asyncio.CancelledError:
            await self._return(message, "shutdown")
            raise
        except PublishFailed as exc:
            self._log.error("publish failed; message returned to the queue", error=str(exc),
                            message_id=message.message_id)
            await self._return(message, "publish_failed", delay=min(5.0, self._settings.lease_seconds))
        except RuntimeUnavailable as exc:
            self._log.error("runtime unavailable; message returned to the queue", error=str(exc))
            await self._return(message, "runtime_unavailable", delay=1.0)
        except Exception as exc:  # noqa: BLE001 - never a crashed task and a redelivery loop
            await self._unhandled(message, exc)
        finally:
            self._leases.release(message)
            self._metrics.in_flight.dec()

    async def _process(self, message: ReceivedMessage) -> None:
        try:
            envelope = env.loads(message.body)
        except env.EnvelopeError as exc:
            self._log.warning("malformed message sent to error-end", reason=exc.reason, message_id=message.message_id)
            wrapped = env.wrap_malformed(message.body, exc.reason, actor=self._settings.actor,
                                         message_id=message.message_id)
            await self._finish(message, [wrapped], "malformed")
            return
        self._tracer.envelope(envelope)  # hop span; sets headers.traceparent for the runtime and outputs
        log = self._log.bind(envelope_id=envelope["id"])
        sent_at = envelope["headers"].get(env.H_SENT_AT)
        if isinstance(sent_at, (int, float)):
            self._metrics.queue_wait_seconds.observe(max(0.0, time.time() - sent_at))
        if envelope["route"]["curr"] != self._settings.actor:
            error = {"type": "RouteMismatch",
                     "message": f"envelope is for actor {envelope['route']['curr']!r} but reached "
                                f"{self._settings.actor!r}", "traceback": ""}
            log.warning("route mismatch sent to error-end", curr=envelope["route"]["curr"])
            failed = routing.failed_envelope(envelope, error, routing.attempt_of(envelope), self._settings.actor)
            await self._finish(message, [failed], "route_mismatch")
            return
        problem = finality.not_before_problem(envelope, float(self._policy.max_interval))
        if problem:
            log.warning("invalid retry time sent to error-end", reason=problem)
            error = {"type": "InvalidHeader", "message": problem, "traceback": ""}
            failed = routing.failed_envelope(envelope, error, routing.attempt_of(envelope), self._settings.actor)
            await self._finish(message, [failed], "invalid_header")
            return
        wait = routing.not_before(envelope) - time.time()
        if wait > 0.05:
            await self._transport.nack(message, delay_seconds=wait)
            self._metrics.outcome("deferred")
            return
        await self._call_and_route(message, envelope, log)

    async def _call_and_route(self, message: ReceivedMessage, envelope: dict[str, Any], log: Any) -> None:
        attempt = routing.attempt_of(envelope)
        frame = await self._calls.call(message, envelope, attempt, log)  # the next call overlaps this publish
        if frame is None:  # not the handler's failure (the runtime was restarted for another call)
            await self._return(message, "returned")
            return
        if frame.get("type") == "result":
            outputs = frame.get("outputs") or []
            if self._terminal:
                await self._ack(message)
                self._metrics.outcome("succeeded")
                return
            try:
                routed = routing.route_outputs(envelope, outputs)
                pause_spec = pause.take(routed)  # ("PAUSE", {...}) or an x-asya-pause header
            except (env.RouteError, KeyError, TypeError, PauseSpecError) as exc:
                await self._failed(message, envelope, _error_of(exc), attempt, log)
                return
            if pause_spec is not None:
                await self._park(message, envelope, routed[0], pause_spec, attempt, log)
                return
            if self._progress is not None and len(routed) > 1:
                await self._progress.spawned(envelope["id"], [o["id"] for o in routed[1:]], self._settings.actor)
            await self._flush_events()
            try:
                await self._finish(message, routed, "succeeded")
            except (MessageTooLarge, QueueNotFound) as exc:
                await self._failed(message, envelope, _error_of(exc), attempt, log)
            return
        error = frame.get("error") or {"type": "Error", "message": str(frame)}
        if error.get("type") == "ShuttingDown":  # the runtime is stopping; the handler never ran
            await self._return(message, "returned", delay=1.0)
            return
        await self._failed(message, envelope, error, attempt, log)

    async def _failed(self, message: ReceivedMessage, envelope: dict[str, Any], error: dict[str, Any],
                      attempt: int, log: Any) -> None:
        """Schedules a retry, or sends the envelope to error-end once attempts are exhausted."""
        self._tracer.error(error)
        self._metrics.error(str(error.get("type", "Error")))
        permanent = is_non_retryable(error, self._policy.non_retryable_errors)
        if attempt < self._policy.max_attempts and not permanent:
            delay = retry_delay(self._policy, attempt)
            log.warning("handler failed; retry scheduled", attempt=attempt, max_attempts=self._policy.max_attempts,
                        delay=round(delay, 3), error_type=error.get("type"), error=error.get("message"))
            retry = routing.retry_envelope(envelope, error, attempt, delay)
            self._tracer.event("retry scheduled", attempt=attempt, next_attempt=attempt + 1, delay=delay,
                               error_type=str(error.get("type")))
            await self._finish(message, [retry], "retried", delay=delay, own_queue=True)
            return
        caught = None if self._terminal else error_routes.caught_envelope(envelope, error, self._settings.actor)
        if caught is not None:  # the route's error branch (Flow DSL try/except) takes it instead of error-end
            log.warning("handler failed; continuing on the route's error branch", attempt=attempt,
                        error_type=error.get("type"), next_actor=caught["route"]["curr"])
            await self._finish(message, [caught], "caught")
            return
        log.error("handler failed; attempts exhausted, sent to error-end", attempt=attempt,
                  error_type=error.get("type"), error=error.get("message"))
        failed = routing.failed_envelope(envelope, error, attempt, self._settings.actor)
        if self._terminal:  # a crew actor that cannot record: park in its own DLQ for a person
            await self._publish(env.dlq_name(self._settings.actor, self._prefix), [failed])
            await self._ack(message)
            self._metrics.outcome("failed")
            return
        await self._finish(message, [failed], "failed")

    async def _finish(self, message: ReceivedMessage, outputs: list[dict[str, Any]], outcome: str,
                      delay: float = 0.0, own_queue: bool = False) -> None:
        """Publishes every output durably, then acks the input.

        Outputs for one queue (the usual case) go with the ack in one ``Transport.forward`` call. On SQLite
        that is one commit, and a lost lease raises ``LeaseLost`` with nothing published: the message is
        counted ``returned`` (its next consumer makes the outputs). Outputs for several queues are published
        together and the ack follows. A failed ack after a durable publish is only logged.
        """
        started = time.perf_counter()
        self._tracer.outputs(outputs)  # each output continues the trace; fan-out children get a span each
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for output in outputs:
            destination = self._settings.actor if own_queue else output["route"]["curr"]
            by_queue.setdefault(destination, []).append(output)
        acked = len(by_queue) == 1  # one queue: publish and ack in one transport call (one commit on SQLite)
        if acked:
            ((dest, batch),) = by_queue.items()
            try:
                await self._publish(env.queue_name(dest, self._prefix), batch, delay, ack=message)
            except LeaseLost as exc:  # nothing published, nothing acked: its next consumer produces the outputs
                self._log.warning("lease lost before the outputs were committed; nothing published, the message "
                                  "goes to its next consumer", error=str(exc), message_id=message.message_id)
                self._metrics.outcome("returned")
                return
            except AckFailed as exc:  # outputs exist; a redelivery only duplicates (at-least-once)
                self._log.warning("ack failed; message may be redelivered", error=str(exc.error),
                                  message_id=message.message_id)
        else:
            await asyncio.gather(*(self._publish(env.queue_name(dest, self._prefix), batch, delay)
                                   for dest, batch in by_queue.items()))
        for dest, batch in by_queue.items():
            for _ in batch:
                self._metrics.published(dest)
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        if not acked:
            await self._ack(message)
        self._metrics.outcome(outcome)

    async def _publish(self, queue: str, outputs: list[dict[str, Any]], delay: float = 0.0,
                       ack: ReceivedMessage | None = None) -> None:
        """Publishes ``outputs`` durably; with ``ack``, acks that message after them (``Transport.forward``).

        Raises:
            PublishFailed: The broker did not take the outputs; nothing was acked.
            MessageTooLarge, QueueNotFound, LeaseLost, AckFailed: As ``Transport.forward`` raises them.
        """
        now = time.time() + delay
        bodies = []
        for output in outputs:
            output.setdefault("headers", {})[env.H_SENT_AT] = now
            bodies.append(self._fit(queue, output, env.dumps(output)))
        send = (self._transport.send_many(queue, bodies, delay_seconds=delay) if ack is None
                else self._transport.forward(ack, queue, bodies, delay_seconds=delay))
        try:
            await self._tracer.publish(queue, len(bodies), send)
        except (MessageTooLarge, QueueNotFound, LeaseLost, AckFailed):
            raise
        except TransportError as exc:
            raise PublishFailed(f"{queue}: {exc}") from exc

    def _fit(self, queue: str, output: dict[str, Any], body: bytes) -> bytes:
        """An error-end record over the size limit is shrunk to fit (truncated body, said so).

        The limit is the broker's (less room for its own encoding) or ``ASYA_MAX_MESSAGE_BYTES``, if lower.
        """
        limits = [self._transport.max_message_bytes - 4096 if self._transport.max_message_bytes else 0,
                  self._settings.max_message_bytes]
        limit = min([n for n in limits if n > 0], default=0)
        if limit <= 0 or len(body) <= limit:
            return body
        if not finality.is_final(output, self._settings.actor):
            raise MessageTooLarge(queue, len(body), limit)
        self._log.warning("error-end record over the size limit; truncated", size=len(body), limit=limit,
                          envelope_id=output.get("id"))
        return finality.fit_final(output, body, limit)

    async def _unhandled(self, message: ReceivedMessage, exc: Exception) -> None:
        """Any exception while handling a message: error-end record with the raw body, then ack."""
        self._log.error("message handling raised; raw body sent to error-end", error=f"{type(exc).__name__}: {exc}",
                        message_id=message.message_id)
        try:
            record = finality.unhandled_record(message.body, exc, actor=self._settings.actor,
                                               message_id=message.message_id)
            queue = (env.dlq_name(self._settings.actor, self._prefix) if self._terminal
                     else env.queue_name(env.ERROR_END, self._prefix))
            await self._publish(queue, [record])
        except Exception as publish_exc:  # noqa: BLE001 - cannot park it: the broker gets it back
            self._log.error("could not park the message; returned to the queue", error=str(publish_exc),
                            message_id=message.message_id)
            await self._return(message, "publish_failed", delay=min(5.0, self._settings.lease_seconds))
            return
        await self._ack(message)
        self._metrics.outcome("unhandled")

    async def _ack(self, message: ReceivedMessage) -> None:
        try:
            await self._transport.ack(message)
        except TransportError as exc:  # outputs exist; a redelivery only duplicates (at-least-once)
            self._log.warning("ack failed; message may be redelivered", error=str(exc),
                              message_id=message.message_id)

    async def _return(self, message: ReceivedMessage, outcome: str, delay: float = 0.0) -> None:
        try:
            await asyncio.shield(self._transport.nack(message, delay_seconds=delay))
        except (TransportError, asyncio.CancelledError) as exc:  # lease expiry returns it anyway
            self._log.warning("nack failed; message returns when its lease expires", error=str(exc))
        self._metrics.outcome(outcome)

    async def _flush_events(self) -> None:
        """Lets queued chunks reach the store before the outputs (bounded by ASYA_EVENTS_FLUSH_TIMEOUT)."""
        flush = getattr(self._progress, "flush", None)
        if flush is not None:
            await flush()

    async def _park(self, message: ReceivedMessage, envelope: dict[str, Any], output: dict[str, Any],
                    spec: dict[str, Any], attempt: int, log: Any) -> None:
        """PAUSE: parks the advanced envelope in the status store, then acks; nothing is published."""
        park = getattr(self._progress, "park", None)
        if park is None:
            error = {"type": "PauseUnavailable", "traceback": "",
                     "message": "the handler paused but this sidecar has no status store (set ASYA_STATUS_DB)"}
            await self._failed(message, envelope, error, attempt, log)
            return
        try:
            new = await park(output, spec, self._settings.actor)
        except Exception as exc:  # noqa: BLE001 - the store is down: keep the message, try again later
            log.error("could not park the paused envelope; message returned to the queue", error=str(exc))
            await self._return(message, "park_failed", delay=min(5.0, self._settings.lease_seconds))
            return
        log.info("envelope paused; waiting for resume", next_actor=output["route"]["curr"], redelivery=not new)
        await self._ack(message)
        self._metrics.outcome("paused")


def _error_of(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
