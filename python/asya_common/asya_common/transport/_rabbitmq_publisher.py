"""The publishing half of the RabbitMQ transport: ``send``, ``send_many``, delayed sends, confirms.

It lives apart from ``rabbitmq.py`` only to keep each module small enough to read at once; it is not a
separate component. :class:`Publishing` is mixed into :class:`~asya_common.transport.rabbitmq.RabbitMQTransport`,
which owns the connection and the confirming publish channel (``_connected``, ``_broken``,
``_publish_channel``, ``_connection``, ``_exchange_name``, ``_delay_queues``); this class only uses them.

Every publish is persistent and mandatory and waits for its publisher confirm; an unroutable message raises
:class:`QueueNotFound` (or waits a moment for a binding that is about to exist), and a lost connection is
re-opened and the publish retried for up to :data:`RECONNECT_TIMEOUT` (a retry may duplicate: at-least-once).
Delayed sends are parked in ``<queue>.delay.<ms>`` (``_rabbitmq_admin``).
"""

from __future__ import annotations

import asyncio
import datetime
import time

import aiormq
import aiormq.abc
import aiormq.exceptions
from pamqp.commands import Basic

from asya_common.transport import _rabbitmq_admin as admin
from asya_common.transport._rabbitmq_guard import CONNECTION_ERRORS, guarded
from asya_common.transport.base import QueueNotFound, TransportError

RECONNECT_TIMEOUT = 60.0
UNBOUND_WAIT_SECONDS = 5.0  # a publish to a queue that exists but is not bound yet waits this long for the binding


class Publishing:
    """``send``/``send_many`` of :class:`RabbitMQTransport`, and the ``_publish`` its consumer side uses."""

    # Provided by RabbitMQTransport, as are its methods _connected() and _broken(), and Transport.check_size():
    _exchange_name: str
    _connection: aiormq.abc.AbstractConnection | None
    _publish_channel: aiormq.abc.AbstractChannel | None
    _delay_queues: set[str]

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
            except CONNECTION_ERRORS as exc:
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
