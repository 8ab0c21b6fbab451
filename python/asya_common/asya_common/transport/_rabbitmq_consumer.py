"""The consuming half of the RabbitMQ transport: consumers, prefetch, ``receive``, leases, ack and nack.

It lives apart from ``rabbitmq.py`` only to keep each module small enough to read at once; it is not a
separate component. :class:`Consuming` is mixed into :class:`~asya_common.transport.rabbitmq.RabbitMQTransport`,
which owns the connection and the per-queue state (``_connected``, ``_broken``, ``_connection``,
``_consumers``, ``_consumer_locks``, ``_book``, ``_queue_limits``) and the publishing side (``_publish``,
used to dead-letter and to return a message with a delay); this class only uses them.

Each consumed queue has its own channel and one :class:`Consumer` on it, shared by every ``receive`` of that
queue: the broker pushes deliveries (up to the prefetch) into the consumer's buffer and ``receive`` takes them
from there, granting each a client-side lease (``_rabbitmq_leases``). A delivery is settled on its own
channel through the consumer's :class:`~asya_common.transport._rabbitmq_acks.Acks`: acks of one loop turn
leave together (``basic.ack``, ``multiple`` where safe), a return is an immediate ``basic.nack`` with requeue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import aiormq
import aiormq.abc
from pamqp.commands import Basic

from asya_common.transport import _rabbitmq_admin as admin
from asya_common.transport._rabbitmq_acks import Acks
from asya_common.transport._rabbitmq_guard import CONNECTION_ERRORS
from asya_common.transport._rabbitmq_leases import Lease, LeaseBook
from asya_common.transport.base import LeaseLost, ReceivedMessage, TransportError

log = logging.getLogger("asya_common.transport.rabbitmq")
PRIOR_RECEIVES_HEADER = "x-asya-receive-count"


@dataclass
class Consumer:
    """The consumer of one queue on its own channel, and the deliveries it received and nobody took yet."""

    channel: aiormq.abc.AbstractChannel
    prefetch: int  # what was asked for last
    buffer: asyncio.Queue = field(default_factory=asyncio.Queue)
    tag: str = ""  # the broker's consumer tag
    started_with: int = 0  # the prefetch RabbitMQ applies: the one set before this consumer started
    acks: Acks = field(init=False)  # the channel's unsettled deliveries; acks of one loop turn leave together

    def __post_init__(self) -> None:
        self.acks = Acks(self.channel)

    async def deliver(self, incoming: aiormq.abc.DeliveredMessage) -> None:
        self.acks.delivered(incoming.delivery_tag)
        self.buffer.put_nowait(incoming)


def _properties(incoming: aiormq.abc.DeliveredMessage) -> Basic.Properties:
    return incoming.header.properties


async def _settle(acks: Acks, incoming: aiormq.abc.DeliveredMessage, ack: bool) -> None:
    """Acks (with the other acks of this loop turn), or returns to the queue at once (``basic.nack`` with
    requeue), one delivery on its own channel.

    Raises:
        aiormq.exceptions.ChannelInvalidStateError: The channel is closed, or closed while the frame waited
            (aiormq would wait forever, see ``_rabbitmq_guard``); the broker has requeued the delivery.
    """
    if ack:
        await acks.ack(incoming.delivery_tag)
    else:
        await acks.nack(incoming.delivery_tag)


class Consuming:
    """``receive``, ``ack``, ``nack``, ``extend_lease`` and ``set_prefetch`` of :class:`RabbitMQTransport`."""

    # Provided by RabbitMQTransport, as are its methods _connected(), _broken(), _queue_limits() and _publish():
    _connection: aiormq.abc.AbstractConnection | None
    _consumers: dict[str, Consumer]
    _consumer_locks: dict[str, asyncio.Lock]
    _book: LeaseBook

    async def _consumer(self, queue: str, prefetch: int) -> Consumer:
        await self._connected()
        consumer = self._consumers.get(queue)
        if consumer is not None and prefetch <= consumer.prefetch and not consumer.channel.is_closed:
            return consumer  # the common case: no lock, no await
        lock = self._consumer_locks.setdefault(queue, asyncio.Lock())
        async with lock:  # concurrent receivers of one queue share one consumer
            return await self._consumer_locked(queue, prefetch)

    async def _consumer_locked(self, queue: str, prefetch: int) -> Consumer:
        consumer = self._consumers.get(queue)
        if consumer is not None and not consumer.channel.is_closed:
            if prefetch > consumer.prefetch:
                await self._reprefetch(queue, consumer, prefetch)
            return consumer
        channel = await admin.new_channel(self._connection)
        await channel.basic_qos(prefetch_count=prefetch)
        await admin.require_queue(channel, queue)
        consumer = Consumer(channel=channel, prefetch=prefetch, started_with=prefetch)
        consumer.tag = (await channel.basic_consume(queue, consumer.deliver)).consumer_tag
        self._consumers[queue] = consumer
        return consumer

    async def _reprefetch(self, queue: str, consumer: Consumer, count: int) -> None:
        """Moves a live consumer's prefetch to ``count``.

        RabbitMQ applies ``basic.qos`` (per consumer) only to consumers started after it, so a raise above
        what the consumer started with re-subscribes it on the same channel: cancel, then consume again.
        Deliveries already received stay valid (their tags belong to the channel) and stay buffered in
        order. A lower value is set for the next consumer only: the broker keeps pushing up to the old
        value, and the caller takes fewer from the buffer (those count as in flight meanwhile).
        """
        await consumer.channel.basic_qos(prefetch_count=count)
        if count > consumer.started_with:
            await consumer.channel.basic_cancel(consumer.tag)
            consumer.tag = (await consumer.channel.basic_consume(queue, consumer.deliver)).consumer_tag
            consumer.started_with = count
        consumer.prefetch = count

    async def set_prefetch(self, queue: str, count: int) -> None:
        """Sets the consumer's prefetch (up or down, see :meth:`_reprefetch`); the next ``receive`` opens the consumer."""
        count = max(1, count)
        consumer = self._consumers.get(queue)
        if consumer is None or consumer.channel.is_closed or consumer.prefetch == count:
            return
        async with self._consumer_locks.setdefault(queue, asyncio.Lock()):
            consumer = self._consumers.get(queue)  # may have been replaced while waiting for the lock
            if consumer is None or consumer.channel.is_closed or consumer.prefetch == count:
                return
            try:
                await self._reprefetch(queue, consumer, count)
            except CONNECTION_ERRORS as exc:
                self._broken()
                raise TransportError(f"prefetch of {queue!r} could not be set: {exc}") from exc

    async def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 1.0, lease_seconds: float = 30.0
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        try:
            consumer = await self._consumer(queue, max(1, max_messages))
        except CONNECTION_ERRORS as exc:
            self._broken()
            raise TransportError(f"receive from {queue!r} failed: {exc}") from exc
        received: list[ReceivedMessage] = []
        while len(received) < max_messages:
            try:
                incoming = consumer.buffer.get_nowait()  # already delivered: no timer, no task
            except asyncio.QueueEmpty:
                if received:
                    break
                try:
                    remaining = deadline - time.monotonic()
                    incoming = await asyncio.wait_for(consumer.buffer.get(), max(remaining, 0.001))
                except asyncio.TimeoutError:
                    break
            message = await self._lease(queue, consumer, incoming, lease_seconds)
            if message is not None:
                received.append(message)
        return received

    async def _lease(self, queue: str, consumer: Consumer, incoming: aiormq.abc.DeliveredMessage,
                     lease_seconds: float) -> ReceivedMessage | None:
        properties = _properties(incoming)
        headers = properties.headers or {}
        count = int(headers.get(PRIOR_RECEIVES_HEADER, 0) or 0) + int(headers.get("x-delivery-count", 0) or 0) + 1
        limits = await self._queue_limits(queue)
        limit, dlq = limits.get("max_receive_count"), limits.get("dlq_name")
        if limit is not None and dlq and count > limit:
            # Counted across delayed re-publishes, which the broker's own x-delivery-limit cannot see.
            log.warning("dead-lettering message %s of %r after %d deliveries", properties.message_id, queue, count - 1)
            clean = {k: v for k, v in headers.items() if k != PRIOR_RECEIVES_HEADER}
            await self._publish(dlq, incoming.body, headers=clean, message_id=properties.message_id, direct=True)
            await _settle(consumer.acks, incoming, ack=True)
            return None
        lease = self._book.grant(incoming, consumer.acks, lease_seconds)
        stamp = properties.timestamp.timestamp() if properties.timestamp else None
        return ReceivedMessage(
            queue=queue,
            body=incoming.body,
            message_id=properties.message_id or str(incoming.delivery_tag),
            receive_count=count,
            handle=lease,
            enqueued_at=stamp,
        )

    async def _settle(self, lease: Lease, action: str) -> None:
        self._book.release(lease)
        try:
            await _settle(lease.acks, lease.incoming, ack=action == "ack")
        except CONNECTION_ERRORS as exc:
            self._broken()
            raise LeaseLost(f"connection lost before {action}; the broker redelivers the message ({exc})") from exc

    async def ack(self, message: ReceivedMessage) -> None:
        await self._settle(self._book.live(message), "ack")

    async def nack(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        try:
            lease = self._book.live(message)
        except LeaseLost:
            return  # already back in the queue
        if delay_seconds <= 0:
            await self._settle(lease, "nack")
            return
        headers = {k: v for k, v in (_properties(lease.incoming).headers or {}).items() if not k.startswith("x-death")}
        headers.pop("x-delivery-count", None)
        headers[PRIOR_RECEIVES_HEADER] = message.receive_count
        await self._publish(
            message.queue, message.body, delay_seconds=delay_seconds, headers=headers, message_id=message.message_id
        )
        await self._settle(lease, "ack")

    async def extend_lease(self, message: ReceivedMessage, seconds: float) -> None:
        self._book.live(message).deadline = time.monotonic() + seconds
