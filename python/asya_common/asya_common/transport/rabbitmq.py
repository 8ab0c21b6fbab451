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

This module owns the connection, the queue administration and depth; the per-message path is in two
mixins next to it, ``_rabbitmq_publisher`` (send, confirms, delayed sends) and ``_rabbitmq_consumer``
(consumers, prefetch, receive, leases, ack and nack), split out only to keep each module readable;
``_rabbitmq_acks`` sends the acks of one loop turn together (one ``multiple`` ack where that is safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions

from asya_common.transport import _rabbitmq_admin as admin
from asya_common.transport._rabbitmq_consumer import PRIOR_RECEIVES_HEADER, Consumer, Consuming
from asya_common.transport._rabbitmq_guard import CONNECTION_ERRORS
from asya_common.transport._rabbitmq_leases import LeaseBook
from asya_common.transport._rabbitmq_publisher import RECONNECT_TIMEOUT, UNBOUND_WAIT_SECONDS, Publishing
from asya_common.transport.base import EnsureResult, QueueDepth, QueueSpec, Transport, TransportError
from asya_common.transport.config import TransportSettings

__all__ = ["PRIOR_RECEIVES_HEADER", "RECONNECT_TIMEOUT", "UNBOUND_WAIT_SECONDS", "RabbitMQTransport"]

log = logging.getLogger(__name__)
# What a closed connection raises in the calls still waiting on it (a confirm, a declare). aiormq's default
# is CancelledError, which would look like the caller's own cancellation; aio-pika passed this one.
_CLOSED = aiormq.exceptions.ConnectionClosed
CLOSE_TIMEOUT = 5.0  # seconds a clean close waits for the consumer channels (their queued acks) to close


class RabbitMQTransport(Publishing, Consuming, Transport):
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
        self._consumers: dict[str, Consumer] = {}
        self._consumer_locks: dict[str, asyncio.Lock] = {}
        self._book = LeaseBook(CONNECTION_ERRORS)
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
        consumers = list(self._consumers.values())
        self._consumers.clear()
        if self._connection is not None and not self._connection.is_closed:
            # Acks leave without waiting for their write (_rabbitmq_acks), and closing the connection drops
            # what is still in aiormq's write queue. A channel's Channel.Close goes through that queue after
            # them and waits for the broker's CloseOk, so every ack that returned reaches the broker first.
            closing = [c.channel.close() for c in consumers if not c.channel.is_closed]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_TIMEOUT)
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

    async def depth(self, queue: str) -> QueueDepth:
        return await self._management.depth(queue)
