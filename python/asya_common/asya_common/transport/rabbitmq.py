"""RabbitMQ transport (aiormq): quorum queues, publisher confirms, client-side leases.

How the interface maps onto RabbitMQ (details and operator notes in ``docs/transports.md``):

* queues are durable **quorum** queues bound to the direct exchange ``ASYA_RABBITMQ_EXCHANGE``;
  messages are persistent and ``send`` waits for the publisher confirm (``mandatory``: an
  unroutable message raises :class:`QueueNotFound` instead of vanishing);
* ``x-delivery-limit`` = ``max_receive_count - 1`` dead-letters a message to ``<queue>-dlq``
  (at-least-once dead-lettering) once it was delivered ``max_receive_count`` times;
* RabbitMQ has no lease: a consumer holds a message until it acks or disconnects. The transport
  keeps a lease per received message and **returns the message itself** (``basic.nack``,
  requeue) when the lease lapses, which is a redelivery with a higher ``x-delivery-count``;
* delayed sends and ``nack(delay)`` park the message in ``<queue>.delay.<ms>``, a quorum queue
  whose message TTL dead-letters it back into ``<queue>``; delays round up to ~10% steps, so a
  message is never early and the consumer is never blocked;
* the connection is re-opened after a broker restart; leases held across it are lost (the broker
  redelivers those messages: at most the in-flight window is delivered twice).

Everything runs on aiormq, the AMQP protocol layer under aio-pika: the connection, the channels, the
queue administration and the per-message path. aio-pika's wrapper objects cost about a third of a relay
stage's CPU and 1.5 MB of the sidecar's memory, and add nothing the transport uses (docs/performance.md).
aiormq does not refuse a closed channel the way aio-pika did (an ack or publish queued for one would
wait forever), so every write waits through ``_rabbitmq_guard.guarded``, which raises instead.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions
from pamqp.commands import Basic

from asya_common.transport import _rabbitmq_admin as admin
from asya_common.transport._rabbitmq_guard import guarded
from asya_common.transport._rabbitmq_leases import Lease, LeaseBook
from asya_common.transport.base import (
    EnsureResult,
    LeaseLost,
    QueueDepth,
    QueueNotFound,
    QueueSpec,
    ReceivedMessage,
    Transport,
    TransportError,
)
from asya_common.transport.config import TransportSettings

log = logging.getLogger(__name__)
PRIOR_RECEIVES_HEADER = "x-asya-receive-count"
RECONNECT_TIMEOUT = 60.0
UNBOUND_WAIT_SECONDS = 5.0  # a publish to a queue that exists but is not bound yet waits this long for the binding
_CONNECTION_ERRORS = (
    ConnectionError,
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    asyncio.TimeoutError,
)
# What a closed connection raises in the calls still waiting on it (a confirm, a declare). aiormq's default
# is CancelledError, which would look like the caller's own cancellation; aio-pika passed this one.
_CLOSED = aiormq.exceptions.ConnectionClosed


@dataclass
class _Consumer:
    channel: aiormq.abc.AbstractChannel
    prefetch: int  # what was asked for last
    buffer: asyncio.Queue = field(default_factory=asyncio.Queue)
    tag: str = ""  # the broker's consumer tag
    started_with: int = 0  # the prefetch RabbitMQ applies: the one set before this consumer started

    async def deliver(self, incoming: aiormq.abc.DeliveredMessage) -> None:
        self.buffer.put_nowait(incoming)


def _properties(incoming: aiormq.abc.DeliveredMessage) -> Basic.Properties:
    return incoming.header.properties


async def _settle(incoming: aiormq.abc.DeliveredMessage, ack: bool) -> None:
    """Acks, or returns to the queue (``basic.nack`` with requeue), one delivery on its own channel.

    Raises:
        aiormq.exceptions.ChannelInvalidStateError: The channel is closed, or closed while the frame waited
            (aiormq would wait forever, see ``_rabbitmq_guard``); the broker has requeued the delivery.
    """
    channel = incoming.channel
    if ack:
        await guarded(channel, channel.basic_ack(incoming.delivery_tag))
    else:
        await guarded(channel, channel.basic_nack(incoming.delivery_tag, requeue=True))


class RabbitMQTransport(Transport):
    """Transport over one AMQP connection: a confirming publish channel plus one channel per consumed queue."""

    name = "rabbitmq"
    #: Asya's limit, well under RabbitMQ's 128 MiB ``max_message_size``: quorum queues keep bodies in memory.
    max_message_bytes = 16 * 1024 * 1024

    def __init__(self, settings: TransportSettings):
        self.settings = settings
        self._url = settings.rabbitmq_url
        self._exchange_name = settings.rabbitmq_exchange
        self._management = admin.ManagementAPI(settings.rabbitmq_url, settings.rabbitmq_management_url)
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._publish_channel: aiormq.abc.AbstractChannel | None = None  # confirming, returns raise
        self._consumers: dict[str, _Consumer] = {}
        self._consumer_locks: dict[str, asyncio.Lock] = {}
        self._book = LeaseBook(_CONNECTION_ERRORS)
        self._was_connected = False
        self._limits: dict[str, dict[str, Any]] = {}
        self._delay_queues: set[str] = set()
        self._lock = asyncio.Lock()

    # -- connection -----------------------------------------------------------------------------

    def _amqp_url(self) -> str:
        base, _, query = self._url.partition("?")
        kept = "&".join(p for p in query.split("&") if p and not p.startswith("management_port="))
        return f"{base}?{kept}" if kept else base

    async def connect(self) -> None:
        await self._connected()
        self._book.start()

    async def _connected(self) -> aiormq.abc.AbstractConnection:
        """The open connection, re-opened (with retries) after it was lost."""
        if self._connection is not None and not self._connection.is_closed:
            return self._connection
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed:
                return self._connection
            deadline = time.monotonic() + RECONNECT_TIMEOUT
            while True:
                try:
                    connection = await asyncio.wait_for(aiormq.connect(self._amqp_url()), timeout=5)
                    break
                except (ConnectionError, OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise TransportError(f"cannot connect to RabbitMQ: {exc}") from exc
                    await asyncio.sleep(0.5)
            if self._was_connected:
                log.warning("reconnected to RabbitMQ; leases held before are lost (the broker redelivers them)")
            self._book.new_generation()
            self._consumers.clear()
            self._delay_queues.clear()
            self._connection, self._was_connected = connection, True
            self._publish_channel = await admin.new_channel(connection, publisher_confirms=True)
            await self._publish_channel.exchange_declare(exchange=self._exchange_name, exchange_type="direct",
                                                         durable=True)
            return connection

    async def close(self) -> None:
        self._book.stop()
        self._was_connected = False
        self._consumers.clear()
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close(_CLOSED)
        self._connection = None

    def _broken(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            asyncio.get_running_loop().create_task(self._connection.close(_CLOSED))
        self._connection = None

    # -- queues ---------------------------------------------------------------------------------

    async def ensure_queue(self, spec: QueueSpec) -> list[EnsureResult]:
        results = []
        if spec.dlq_name:
            results.append(await self._ensure_one(spec.dlq_name, admin.queue_arguments(None, None), None))
        wanted_args = admin.queue_arguments(spec.max_receive_count, spec.dlq_name)
        wanted = {**spec.attributes(), "queue_type": admin.QUORUM} if spec.dlq_name else None
        results.append(await self._ensure_one(spec.name, wanted_args, wanted))
        return results

    async def _ensure_one(self, name: str, args: dict[str, Any], wanted: dict[str, Any] | None) -> EnsureResult:
        connection = await self._connected()
        result, self._limits[name] = await admin.ensure_one(connection, self._exchange_name, name, args, wanted)
        return result

    async def delete_queue(self, name: str) -> None:
        connection = await self._connected()
        consumer = self._consumers.pop(name, None)
        if consumer is not None and not consumer.channel.is_closed:
            await consumer.channel.close()
        self._limits.pop(name, None)
        await admin.delete(connection, name)

    async def _queue_limits(self, queue: str) -> dict[str, Any]:
        if queue not in self._limits:
            connection = await self._connected()
            actual = await admin.read_arguments(connection, queue, admin.queue_arguments(10, f"{queue}-dlq"))
            self._limits[queue] = admin.spec_attributes(actual)
        return self._limits[queue]

    # -- publishing -----------------------------------------------------------------------------

    async def send(self, queue: str, body: bytes, *, delay_seconds: float = 0.0) -> None:
        self.check_size(queue, body)
        await self._publish(queue, body, delay_seconds=delay_seconds)

    async def send_many(self, queue: str, bodies: list[bytes], *, delay_seconds: float = 0.0) -> None:
        """Publishes all bodies with pipelined confirms; returns once every one is confirmed."""
        for body in bodies:
            self.check_size(queue, body)
        if len(bodies) == 1:  # the common case: no gather, no extra task
            await self._publish(queue, bodies[0], delay_seconds=delay_seconds)
            return
        for start in range(0, len(bodies), 256):
            chunk = bodies[start : start + 256]
            await asyncio.gather(*(self._publish(queue, body, delay_seconds=delay_seconds) for body in chunk))

    async def _publish(
        self, queue: str, body: bytes, *, delay_seconds: float = 0.0, headers: dict | None = None,
        message_id: str | None = None, direct: bool = False,
    ) -> None:
        """Publishes and waits for the confirm, retrying over a reconnect (a retry may duplicate).

        Persistent, mandatory, with a timestamp; aiormq assigns a random message id when none is given.
        """
        properties = Basic.Properties(delivery_mode=2, message_id=message_id or None, headers=headers or None,
                                      timestamp=datetime.datetime.now(datetime.timezone.utc))
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        unbound_deadline = time.monotonic() + UNBOUND_WAIT_SECONDS
        while True:
            try:
                await self._connected()
                if delay_seconds > 0:
                    await self._publish_delayed(queue, body, properties, delay_seconds)
                else:
                    channel = self._publish_channel  # guarded: aiormq would wait forever on a closed channel
                    await guarded(channel, channel.basic_publish(
                        body, exchange="" if direct else self._exchange_name, routing_key=queue,
                        properties=properties, mandatory=True))
                return
            except aiormq.exceptions.PublishError as exc:
                if not await self._exists(queue):
                    raise QueueNotFound(f"RabbitMQ queue {queue!r} does not exist (message unroutable)") from exc
                # The queue exists but is not bound yet (declared a moment ago; the binding follows):
                # wait for it rather than report a missing queue (a failed attempt, maybe error-end).
                if time.monotonic() > unbound_deadline:
                    raise TransportError(f"RabbitMQ queue {queue!r} exists but is not bound to exchange "
                                         f"{self._exchange_name!r}; the message was not routed") from exc
                await asyncio.sleep(0.1)
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                raise TransportError(f"publish to {queue!r} refused: {exc}") from exc
            except aiormq.exceptions.DeliveryError as exc:
                raise TransportError(f"RabbitMQ did not confirm the message to {queue!r}: {exc}") from exc
            except _CONNECTION_ERRORS as exc:
                self._broken()
                if time.monotonic() > deadline:
                    raise TransportError(f"publish to {queue!r} failed: {exc}") from exc
                await asyncio.sleep(0.5)

    async def _exists(self, queue: str) -> bool:
        """True when ``queue`` exists (a passive declare on a short-lived channel)."""
        try:
            async with admin.open_channel(await self._connected()) as channel:
                await admin.require_queue(channel, queue)
            return True
        except QueueNotFound:
            return False

    async def _publish_delayed(self, queue: str, body: bytes, properties: Basic.Properties,
                               delay_seconds: float) -> None:
        bucket = admin.delay_bucket_ms(delay_seconds)
        parking = admin.delay_queue_name(queue, bucket)
        if parking not in self._delay_queues:
            async with admin.open_channel(self._connection) as channel:  # one channel, always closed
                await admin.require_queue(channel, queue)
                await channel.queue_declare(parking, durable=True,
                                            arguments=admin.delay_queue_arguments(queue, bucket))
            self._delay_queues.add(parking)
        channel = self._publish_channel
        await guarded(channel, channel.basic_publish(body, exchange="", routing_key=parking, properties=properties,
                                                     mandatory=True))

    # -- consuming ------------------------------------------------------------------------------

    async def _consumer(self, queue: str, prefetch: int) -> _Consumer:
        await self._connected()
        consumer = self._consumers.get(queue)
        if consumer is not None and prefetch <= consumer.prefetch and not consumer.channel.is_closed:
            return consumer  # the common case: no lock, no await
        lock = self._consumer_locks.setdefault(queue, asyncio.Lock())
        async with lock:  # concurrent receivers of one queue share one consumer
            return await self._consumer_locked(queue, prefetch)

    async def _consumer_locked(self, queue: str, prefetch: int) -> _Consumer:
        consumer = self._consumers.get(queue)
        if consumer is not None and not consumer.channel.is_closed:
            if prefetch > consumer.prefetch:
                await self._reprefetch(queue, consumer, prefetch)
            return consumer
        channel = await admin.new_channel(self._connection)
        await channel.basic_qos(prefetch_count=prefetch)
        await admin.require_queue(channel, queue)
        consumer = _Consumer(channel=channel, prefetch=prefetch, started_with=prefetch)
        consumer.tag = (await channel.basic_consume(queue, consumer.deliver)).consumer_tag
        self._consumers[queue] = consumer
        return consumer

    async def _reprefetch(self, queue: str, consumer: _Consumer, count: int) -> None:
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
            except _CONNECTION_ERRORS as exc:
                self._broken()
                raise TransportError(f"prefetch of {queue!r} could not be set: {exc}") from exc

    async def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 1.0, lease_seconds: float = 30.0
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        try:
            consumer = await self._consumer(queue, max(1, max_messages))
        except _CONNECTION_ERRORS as exc:
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
            message = await self._lease(queue, incoming, lease_seconds)
            if message is not None:
                received.append(message)
        return received

    async def _lease(self, queue: str, incoming: aiormq.abc.DeliveredMessage,
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
            await _settle(incoming, ack=True)
            return None
        lease = self._book.grant(incoming, lease_seconds)
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
            await _settle(lease.incoming, ack=action == "ack")
        except _CONNECTION_ERRORS as exc:
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

    async def depth(self, queue: str) -> QueueDepth:
        return await self._management.depth(queue)
