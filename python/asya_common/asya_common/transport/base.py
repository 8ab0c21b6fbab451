"""The one transport interface every broker implements (SQLite, RabbitMQ, SQS, Pub/Sub).

The sidecar, the crew, the CLI and the controller only ever talk to :class:`Transport`. Each
implementation maps these operations onto its broker's own terms (visibility timeouts, ack
deadlines, delivery tags) and is proven by the shared contract suite in ``tests/contract``.

Semantics every implementation must keep:

* ``send`` returns only once the message is durable (publisher confirm, SendMessage 200,
  publish future resolved, SQLite commit). It raises on failure; it never drops silently.
* ``receive`` leases messages: a leased message is invisible to other consumers until it is
  acked, nacked, or its lease expires, after which it is delivered again with a higher
  ``receive_count``.
* A message whose ``receive_count`` would exceed the queue's ``max_receive_count`` is moved to
  the queue's dead-letter queue instead of being delivered again.
* ``nack(delay_seconds=d)`` makes the message visible again after about ``d`` seconds.
* ``depth`` counts ready, in-flight (leased) and delayed messages separately.
* ``forward`` publishes a message's outputs and then acks it; a transport that can do both in one
  atomic write (SQLite) raises ``LeaseLost`` from it only when nothing was published.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar


class TransportError(RuntimeError):
    """A broker operation failed; the message says which operation and queue."""


class MessageTooLarge(TransportError):
    """A body exceeds the transport's size limit; nothing was sent."""

    def __init__(self, queue: str, size: int, limit: int):
        super().__init__(f"message of {size} bytes for queue {queue!r} exceeds the transport limit of {limit} bytes")
        self.queue, self.size, self.limit = queue, size, limit


class QueueNotFound(TransportError):
    """The named queue does not exist (not created, or deleted by hand)."""


class LeaseLost(TransportError):
    """The message's lease expired and it may already be with another consumer."""

    @classmethod
    def expired(cls, message: "ReceivedMessage") -> "LeaseLost":
        """The error for a lease that ran out before the message was settled."""
        return cls(f"lease of message {message.message_id} on {message.queue!r} expired; it will be redelivered")


class AckFailed(TransportError):
    """``forward`` published the outputs durably, but the ack that followed failed.

    The message may be delivered again and its outputs published twice (at-least-once). The ack's own
    error (often :class:`LeaseLost`) is ``__cause__`` and :attr:`error`.
    """

    def __init__(self, message: "ReceivedMessage", error: BaseException):
        super().__init__(f"outputs of message {message.message_id} on {message.queue!r} are published, "
                         f"but its ack failed: {error}")
        self.error = error


@dataclass(frozen=True)
class QueueSpec:
    """What a queue should look like; ``ensure_queue`` creates it or reports drift.

    Attributes:
        name: Full queue name, prefix included (``asya-judge``).
        dlq_name: Its dead-letter queue (``asya-judge-dlq``), or None for a queue without one
            (a DLQ itself).
        max_receive_count: Deliveries after which a message is dead-lettered instead.
        lease_seconds: Default visibility timeout / ack deadline for receives.
        retention_seconds: How long an unconsumed message is kept (where the broker supports it).
    """

    name: str
    dlq_name: str | None = None
    max_receive_count: int = 10
    lease_seconds: float = 30.0
    retention_seconds: int = 14 * 24 * 3600

    def attributes(self) -> dict[str, Any]:
        """The attributes compared for drift, as plain values."""
        return {
            "dlq_name": self.dlq_name,
            "max_receive_count": self.max_receive_count,
        }


@dataclass(frozen=True)
class EnsureResult:
    """Outcome of ensuring one queue.

    Attributes:
        queue: Queue name.
        created: True when this call created it.
        drift: ``{attribute: (wanted, actual)}`` for an existing queue whose attributes differ.
            Queues with drift are left untouched: never silently recreated.
    """

    queue: str
    created: bool
    drift: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def drift_between(wanted: dict[str, Any], actual: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{attribute: (wanted, actual)}`` for every wanted attribute an existing queue does not have."""
    return {key: (value, actual.get(key)) for key, value in wanted.items() if actual.get(key) != value}


@dataclass(frozen=True)
class QueueDepth:
    """Messages in a queue: ``ready`` to deliver, ``in_flight`` (leased), ``delayed`` (not yet visible)."""

    ready: int
    in_flight: int
    delayed: int = 0

    @property
    def total(self) -> int:
        """All messages the queue still holds."""
        return self.ready + self.in_flight + self.delayed


@dataclass
class ReceivedMessage:
    """One leased message.

    Attributes:
        queue: Queue it was received from.
        body: Raw bytes as sent.
        message_id: The broker's id for this message (stable across redeliveries where possible).
        receive_count: 1 on first delivery, incremented on every redelivery.
        handle: Transport-private data needed to ack/nack/extend (receipt handle, delivery tag...).
        enqueued_at: Unix time the message was sent, when the broker knows it.
    """

    queue: str
    body: bytes
    message_id: str
    receive_count: int
    handle: Any = field(default=None, repr=False)
    enqueued_at: float | None = None


class Transport(abc.ABC):
    """Async interface to one broker. Instances are used from a single event loop."""

    #: Short name used in ``ASYA_TRANSPORT`` (``sqlite``, ``rabbitmq``, ``sqs``, ``pubsub``).
    name: ClassVar[str] = ""
    #: Largest body ``send`` accepts; bigger ones raise :class:`MessageTooLarge`.
    max_message_bytes: ClassVar[int] = 0

    async def __aenter__(self) -> "Transport":
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Opens connections; safe to call again after :meth:`close`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases connections. Leased, unacked messages return to the queue when leases expire."""

    @abc.abstractmethod
    async def ensure_queue(self, spec: QueueSpec) -> list[EnsureResult]:
        """Creates ``spec.name`` and its DLQ when missing; reports drift on existing ones.

        Returns:
            One result per queue touched, the DLQ first.
        """

    @abc.abstractmethod
    async def delete_queue(self, name: str) -> None:
        """Deletes a queue and its messages; a missing queue is not an error."""

    @abc.abstractmethod
    async def send(self, queue: str, body: bytes, *, delay_seconds: float = 0.0) -> None:
        """Publishes ``body`` durably; returns only once the broker has confirmed it.

        Raises:
            MessageTooLarge: ``body`` exceeds :attr:`max_message_bytes`.
            QueueNotFound: The queue does not exist.
            TransportError: The broker did not confirm the message.
        """

    @abc.abstractmethod
    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float = 1.0,
        lease_seconds: float = 30.0,
    ) -> list[ReceivedMessage]:
        """Leases up to ``max_messages``, waiting up to ``wait_seconds`` for the first one."""

    async def set_prefetch(self, queue: str, count: int) -> None:
        """Caps how many messages of ``queue`` the broker hands this client ahead of ``receive``.

        Only a push-based broker (RabbitMQ's ``basic.qos``) holds deliveries for a client beyond what
        ``receive`` asked for; the pull-based ones take exactly ``max_messages`` and need nothing here.
        """

    @abc.abstractmethod
    async def ack(self, message: ReceivedMessage) -> None:
        """Deletes a leased message for good."""

    @abc.abstractmethod
    async def nack(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        """Returns a leased message to its queue, visible again after ``delay_seconds``."""

    @abc.abstractmethod
    async def extend_lease(self, message: ReceivedMessage, seconds: float) -> None:
        """Keeps a leased message invisible for ``seconds`` more from now.

        Raises:
            LeaseLost: The lease already expired.
        """

    @abc.abstractmethod
    async def depth(self, queue: str) -> QueueDepth:
        """Counts the messages in ``queue``."""

    async def send_many(self, queue: str, bodies: list[bytes], *, delay_seconds: float = 0.0) -> None:
        """Publishes several bodies; returns once all are durable. Brokers may override to batch."""
        for body in bodies:
            await self.send(queue, body, delay_seconds=delay_seconds)

    async def forward(self, message: ReceivedMessage, queue: str, bodies: list[bytes], *,
                      delay_seconds: float = 0.0) -> None:
        """Publishes ``bodies`` durably to ``queue``, then acks ``message`` (one hop of the sidecar).

        This default is :meth:`send_many` followed by :meth:`ack`, two steps: when the ack fails the
        outputs already exist, and a redelivery of ``message`` publishes them again. A transport that
        can commit both in one write overrides it (SQLite: the inserts and the delete are one commit,
        so a lost lease publishes nothing).

        Args:
            message: The leased input message.
            queue: Where every body goes.
            bodies: The outputs, published in this order.
            delay_seconds: Visibility delay of every body.

        Raises:
            MessageTooLarge: A body is over :attr:`max_message_bytes`; nothing was published or acked.
            QueueNotFound: ``queue`` does not exist; nothing was acked.
            LeaseLost: The lease of ``message`` was lost before anything was published (atomic
                transports only); nothing was acked, and the message goes to its next consumer.
            AckFailed: The outputs are durable but the ack failed (two-step transports only).
            TransportError: The broker did not confirm the outputs; nothing was acked.
        """
        await self.send_many(queue, bodies, delay_seconds=delay_seconds)
        try:
            await self.ack(message)
        except TransportError as exc:
            raise AckFailed(message, exc) from exc

    def check_size(self, queue: str, body: bytes) -> None:
        """Raises :class:`MessageTooLarge` when ``body`` is over this transport's limit."""
        if self.max_message_bytes and len(body) > self.max_message_bytes:
            raise MessageTooLarge(queue, len(body), self.max_message_bytes)
