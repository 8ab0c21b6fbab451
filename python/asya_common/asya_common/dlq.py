"""Dead-letter queue operations shared by the controller (bookkeeping) and ``asya dlq`` (list/show/redrive).

Everything goes through the :class:`~asya_common.transport.Transport` interface, so it works the same
on SQLite, RabbitMQ, SQS and Pub/Sub. Looking at a DLQ means leasing messages and returning them
(``nack``): a DLQ has no DLQ of its own, so the higher receive count does no harm. A redrive sends each
envelope back to the actor's queue *first* and acks it from the DLQ *after*: an interrupted redrive
can duplicate an envelope (at-least-once, like the rest of the mesh) but never lose one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from asya_common import envelope as env
from asya_common.transport.base import QueueDepth, ReceivedMessage, Transport

#: Headers that carry a failed envelope's retry state; a redrive drops them so the actor starts afresh.
RETRY_HEADERS = (env.H_ATTEMPT, env.H_ATTEMPT_ERRORS, env.H_NOT_BEFORE, env.H_ERROR)
DLQ_SUFFIX = "-dlq"


@dataclass
class DLQEntry:
    """One dead-lettered message, decoded when possible.

    Attributes:
        message_id: The broker's id.
        receive_count: Deliveries so far (from the DLQ's point of view).
        enqueued_at: Unix time it entered the DLQ, when the broker knows it.
        envelope: The decoded envelope, or None when the body is not one.
        error: The ``x-asya-error`` record, or None.
        decode_error: Why the body is not an envelope, when it is not.
        size: Body size in bytes.
    """

    message_id: str
    receive_count: int
    enqueued_at: float | None
    envelope: dict[str, Any] | None
    error: dict[str, Any] | None
    decode_error: str | None
    size: int

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view: id, route, last error, payload."""
        out: dict[str, Any] = {"message_id": self.message_id, "receive_count": self.receive_count,
                               "enqueued_at": self.enqueued_at, "size": self.size}
        if self.envelope is None:
            out["decode_error"] = self.decode_error
            return out
        out.update(id=self.envelope.get("id"), route=self.envelope.get("route"), payload=self.envelope.get("payload"))
        if self.error:
            attempts = self.error.get("attempts") or []
            out["error"] = {k: self.error.get(k) for k in ("actor", "type", "message")}
            out["error"]["attempts"] = len(attempts)
            if attempts:
                out["error"]["last_attempt"] = attempts[-1]
        attempt = (self.envelope.get("headers") or {}).get(env.H_ATTEMPT)
        if attempt is not None:
            out["attempt"] = attempt
        return out


@dataclass
class RedriveResult:
    """What a redrive did: ``moved`` envelopes are back in the actor's queue; ``skipped`` stayed in the DLQ."""

    moved: int = 0
    skipped: list[str] = field(default_factory=list)


def decode(message: ReceivedMessage) -> DLQEntry:
    """Decodes a leased DLQ message into a :class:`DLQEntry` (never raises on a bad body)."""
    envelope: dict[str, Any] | None = None
    decode_error = None
    try:
        envelope = env.loads(message.body)
    except (env.EnvelopeError, ValueError) as exc:
        decode_error = str(exc)
    error = ((envelope or {}).get("headers") or {}).get(env.H_ERROR) if envelope else None
    return DLQEntry(message.message_id, message.receive_count, message.enqueued_at, envelope,
                    error if isinstance(error, dict) else None, decode_error, len(message.body))


def reset_attempts(envelope: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``envelope`` without the retry headers (:data:`RETRY_HEADERS`), so attempts start at 1."""
    fresh = env.copy_envelope(envelope)
    headers = fresh.get("headers") or {}
    for name in RETRY_HEADERS:
        headers.pop(name, None)
    return fresh


async def _lease_up_to(transport: Transport, queue: str, limit: int, lease_seconds: float) -> list[ReceivedMessage]:
    leased: list[ReceivedMessage] = []
    while len(leased) < limit:
        batch = await transport.receive(queue, max_messages=min(10, limit - len(leased)), wait_seconds=0.5,
                                        lease_seconds=lease_seconds)
        if not batch:
            break
        leased.extend(batch)
    return leased


async def peek(transport: Transport, dlq: str, limit: int = 10, lease_seconds: float = 30.0) -> list[DLQEntry]:
    """Decodes up to ``limit`` messages of ``dlq`` and returns them to the queue untouched.

    Returns:
        The decoded entries, oldest first where the broker knows enqueue times.
    """
    leased = await _lease_up_to(transport, dlq, limit, lease_seconds)
    try:
        entries = [decode(m) for m in leased]
    finally:
        for message in leased:
            await transport.nack(message)
    return sorted(entries, key=lambda e: e.enqueued_at if e.enqueued_at is not None else float("inf"))


async def oldest_age(transport: Transport, dlq: str, sample: int = 10, now: float | None = None) -> float | None:
    """Age in seconds of the oldest of up to ``sample`` DLQ messages, or None when empty or unknown."""
    entries = await peek(transport, dlq, limit=sample, lease_seconds=10.0)
    times = [e.enqueued_at for e in entries if e.enqueued_at is not None]
    if not times:
        return None
    return max(0.0, (now or time.time()) - min(times))


async def redrive(transport: Transport, dlq: str, queue: str, limit: int | None = None,
                  batch: int = 10, lease_seconds: float = 60.0, hide_seconds: float = 5.0) -> RedriveResult:
    """Moves envelopes from ``dlq`` back to ``queue`` with their attempt count reset.

    Each batch is sent to ``queue`` (durably) before it is acked from ``dlq``. Bodies that are not
    envelopes are left in the DLQ (listed in ``skipped``; hidden for ``hide_seconds``) for inspection
    with ``asya dlq show``.

    Args:
        transport: Connected transport.
        dlq: The dead-letter queue to drain.
        queue: The actor's queue to send to.
        limit: Move at most this many envelopes (None = until the DLQ is empty).
        batch: Messages leased per round trip.
        lease_seconds: Lease on each DLQ message while it is being moved.
        hide_seconds: How long an undecodable body stays invisible after it is put back.
    """
    result = RedriveResult()
    while limit is None or result.moved < limit:
        want = batch if limit is None else min(batch, limit - result.moved)
        messages = await transport.receive(dlq, max_messages=want, wait_seconds=0.5, lease_seconds=lease_seconds)
        if not messages:
            break
        good: list[tuple[ReceivedMessage, bytes]] = []
        for message in messages:
            entry = decode(message)
            if entry.envelope is None:
                # back to the DLQ, out of sight for a moment (a lease held until the end would use up a
                # broker's prefetch window and stall the redrive)
                await transport.nack(message, delay_seconds=hide_seconds)
                if message.message_id not in result.skipped:
                    result.skipped.append(message.message_id)
            else:
                good.append((message, env.dumps(reset_attempts(entry.envelope))))
        if good:
            await transport.send_many(queue, [body for _, body in good])
            for message, _ in good:
                await transport.ack(message)
            result.moved += len(good)
    return result


async def record_dead_letters(transport: Transport, store: Any, dlq: str, limit: int = 100) -> int:
    """Marks the envelopes in ``dlq`` ``dead_lettered`` in the status store, so none stays ``running`` forever.

    Records that are final already (succeeded, failed, canceled, dead-lettered) are left as they are.
    Called by the controller's DLQ bookkeeping and by ``asya dev`` whenever a DLQ holds messages.

    Returns:
        How many records were marked.
    """
    from asya_common.status import FINAL  # the status package is only needed by callers that keep a store

    marked = 0
    for entry in await peek(transport, dlq, limit=limit, lease_seconds=10.0):
        if entry.envelope is None:
            continue
        record = await asyncio.to_thread(store.get, entry.envelope["id"])
        if record is None or record.get("status") not in FINAL:
            await asyncio.to_thread(store.mark_dead_lettered, entry.envelope["id"], dlq)
            marked += 1
    return marked


async def list_dlqs(transport: Transport, prefix: str, actors: list[str] | None = None) -> dict[str, QueueDepth]:
    """Depth of each actor's DLQ, keyed by actor name.

    Args:
        transport: Connected transport.
        prefix: Queue name prefix (``asya-``).
        actors: Actors to look at; None = every ``<prefix>*-dlq`` queue the transport can list.

    Raises:
        ValueError: ``actors`` is None and the transport cannot list its queues.
    """
    if actors is None:
        lister = getattr(transport, "list_queues", None)
        if lister is None:
            raise ValueError(f"the {transport.name} transport cannot list queues: name the actors")
        names = await lister()
        actors = [n[len(prefix):-len(DLQ_SUFFIX)] for n in names
                  if n.startswith(prefix) and n.endswith(DLQ_SUFFIX) and len(n) > len(prefix) + len(DLQ_SUFFIX)]
    return {actor: await transport.depth(env.dlq_name(actor, prefix)) for actor in sorted(actors)}
