"""One message, end to end: decode, call the runtime, route, publish, and only then ack.

Every path ends in exactly one of: ack after all outputs are durably published (success, retry
scheduled, error-end), nack (returned to the queue: shutdown, runtime restarted, publish failed),
or the lease simply running out (sidecar killed, or a lease lost before the commit that publishes and
acks at once on SQLite). Nothing is acked before its successors exist. This module decides which ending
a message gets; ``outbox.py`` publishes and settles it.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any, Protocol

from asya_common import envelope as env
from asya_common.transport import MessageTooLarge, QueueNotFound, ReceivedMessage, Transport
from asya_sidecar import error_routes, routing
from asya_sidecar import finality
from asya_common.status.model import PauseSpecError
from asya_sidecar import pause
from asya_sidecar.backoff import retry_delay
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.nonretryable import is_non_retryable
from asya_sidecar.outbox import Outbox, PublishFailed
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
        self._outbox = Outbox(settings, transport, metrics, log, queue_prefix, self._tracer)
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
            await self._outbox.hand_back(message, "shutdown")
            raise
        except PublishFailed as exc:
            self._log.error("publish failed; message returned to the queue", error=str(exc),
                            message_id=message.message_id)
            await self._outbox.hand_back(message, "publish_failed", delay=min(5.0, self._settings.lease_seconds))
        except RuntimeUnavailable as exc:
            self._log.error("runtime unavailable; message returned to the queue", error=str(exc))
            await self._outbox.hand_back(message, "runtime_unavailable", delay=1.0)
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
            await self._outbox.finish(message, [wrapped], "malformed")
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
            await self._outbox.finish(message, [failed], "route_mismatch")
            return
        problem = finality.not_before_problem(envelope, float(self._policy.max_interval))
        if problem:
            log.warning("invalid retry time sent to error-end", reason=problem)
            error = {"type": "InvalidHeader", "message": problem, "traceback": ""}
            failed = routing.failed_envelope(envelope, error, routing.attempt_of(envelope), self._settings.actor)
            await self._outbox.finish(message, [failed], "invalid_header")
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
            await self._outbox.hand_back(message, "returned")
            return
        if frame.get("type") == "result":
            outputs = frame.get("outputs") or []
            if self._terminal:
                await self._outbox.ack(message)
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
                await self._outbox.finish(message, routed, "succeeded")
            except (MessageTooLarge, QueueNotFound) as exc:
                await self._failed(message, envelope, _error_of(exc), attempt, log)
            return
        error = frame.get("error") or {"type": "Error", "message": str(frame)}
        if error.get("type") == "ShuttingDown":  # the runtime is stopping; the handler never ran
            await self._outbox.hand_back(message, "returned", delay=1.0)
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
            await self._outbox.finish(message, [retry], "retried", delay=delay, own_queue=True)
            return
        caught = None if self._terminal else error_routes.caught_envelope(envelope, error, self._settings.actor)
        if caught is not None:  # the route's error branch (Flow DSL try/except) takes it instead of error-end
            log.warning("handler failed; continuing on the route's error branch", attempt=attempt,
                        error_type=error.get("type"), next_actor=caught["route"]["curr"])
            await self._outbox.finish(message, [caught], "caught")
            return
        log.error("handler failed; attempts exhausted, sent to error-end", attempt=attempt,
                  error_type=error.get("type"), error=error.get("message"))
        failed = routing.failed_envelope(envelope, error, attempt, self._settings.actor)
        if self._terminal:  # a crew actor that cannot record: park in its own DLQ for a person
            await self._outbox.publish(env.dlq_name(self._settings.actor, self._prefix), [failed])
            await self._outbox.ack(message)
            self._metrics.outcome("failed")
            return
        await self._outbox.finish(message, [failed], "failed")

    async def _unhandled(self, message: ReceivedMessage, exc: Exception) -> None:
        """Any exception while handling a message: error-end record with the raw body, then ack."""
        self._log.error("message handling raised; raw body sent to error-end", error=f"{type(exc).__name__}: {exc}",
                        message_id=message.message_id)
        try:
            record = finality.unhandled_record(message.body, exc, actor=self._settings.actor,
                                               message_id=message.message_id)
            queue = (env.dlq_name(self._settings.actor, self._prefix) if self._terminal
                     else env.queue_name(env.ERROR_END, self._prefix))
            await self._outbox.publish(queue, [record])
        except Exception as publish_exc:  # noqa: BLE001 - cannot park it: the broker gets it back
            self._log.error("could not park the message; returned to the queue", error=str(publish_exc),
                            message_id=message.message_id)
            await self._outbox.hand_back(message, "publish_failed", delay=min(5.0, self._settings.lease_seconds))
            return
        await self._outbox.ack(message)
        self._metrics.outcome("unhandled")

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
            await self._outbox.hand_back(message, "park_failed", delay=min(5.0, self._settings.lease_seconds))
            return
        log.info("envelope paused; waiting for resume", next_actor=output["route"]["curr"], redelivery=not new)
        await self._outbox.ack(message)
        self._metrics.outcome("paused")


def _error_of(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
