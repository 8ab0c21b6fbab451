"""How a message leaves the sidecar: its outputs published durably, then the input acked or handed back.

``processor.py`` decides what happens to a message; this module does the broker side of every ending,
in the one order that loses nothing: outputs durable first, the ack after (in the same commit where the
transport can: ``Transport.forward``). A failed ack is only logged, since a redelivery can only
duplicate; a failed publish raises :class:`PublishFailed` so that the input is never acked.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asya_common import envelope as env
from asya_common.transport import (AckFailed, LeaseLost, MessageTooLarge, QueueNotFound, ReceivedMessage, Transport,
                                   TransportError)
from asya_sidecar import finality
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.settings import SidecarSettings
from asya_sidecar.tracing import NoTracer


class PublishFailed(RuntimeError):
    """Outputs could not be durably published; the input must not be acked."""


class Outbox:
    """Publishes outputs and settles input messages for one actor.

    Args:
        settings: Sidecar settings (the actor's name and the message size limit).
        transport: Connected transport.
        metrics: Metrics to update.
        log: Bound structlog logger.
        queue_prefix: Prefix of every queue name.
        tracer: Publish spans (a no-op when tracing is off).
    """

    def __init__(self, settings: SidecarSettings, transport: Transport, metrics: SidecarMetrics, log: Any,
                 queue_prefix: str, tracer: NoTracer):
        self._settings, self._transport, self._metrics, self._log = settings, transport, metrics, log
        self._prefix, self._tracer = queue_prefix, tracer

    async def finish(self, message: ReceivedMessage, outputs: list[dict[str, Any]], outcome: str,
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
                await self.publish(env.queue_name(dest, self._prefix), batch, delay, ack=message)
            except LeaseLost as exc:  # nothing published, nothing acked: its next consumer produces the outputs
                self._log.warning("lease lost before the outputs were committed; nothing published, the message "
                                  "goes to its next consumer", error=str(exc), message_id=message.message_id)
                self._metrics.outcome("returned")
                return
            except AckFailed as exc:
                self._ack_failed(message, exc.error)
        else:
            await asyncio.gather(*(self.publish(env.queue_name(dest, self._prefix), batch, delay)
                                   for dest, batch in by_queue.items()))
        for dest, batch in by_queue.items():
            for _ in batch:
                self._metrics.published(dest)
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        if not acked:
            await self.ack(message)
        self._metrics.outcome(outcome)

    async def publish(self, queue: str, outputs: list[dict[str, Any]], delay: float = 0.0,
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

    async def ack(self, message: ReceivedMessage) -> None:
        """Acks ``message`` after its outputs are durable; a failure is only logged (at-least-once)."""
        try:
            await self._transport.ack(message)
        except TransportError as exc:
            self._ack_failed(message, exc)

    def _ack_failed(self, message: ReceivedMessage, error: BaseException) -> None:
        """The outputs exist and only the ack failed: a redelivery can only duplicate (at-least-once)."""
        self._log.warning("ack failed; message may be redelivered", error=str(error), message_id=message.message_id)

    async def hand_back(self, message: ReceivedMessage, outcome: str, delay: float = 0.0) -> None:
        """Returns ``message`` to its queue (visible again after ``delay`` s) and counts ``outcome``."""
        try:
            await asyncio.shield(self._transport.nack(message, delay_seconds=delay))
        except (TransportError, asyncio.CancelledError) as exc:  # lease expiry returns it anyway
            self._log.warning("nack failed; message returns when its lease expires", error=str(exc))
        self._metrics.outcome(outcome)
