"""Google Cloud Pub/Sub transport (GAPIC asyncio clients of google-cloud-pubsub).

How the interface maps onto Pub/Sub (details and the emulator's gaps in ``docs/transports.md``):

* each queue is a topic **and** a subscription of the same name; the DLQ is the topic + subscription
  ``<queue>-dlq`` named in the subscription's dead-letter policy;
* ``max_delivery_attempts`` must be 5..100 in Pub/Sub, so the configured ``max_receive_count`` is
  clamped there and also stored as a subscription label; the transport enforces the exact value
  itself (it moves a message whose ``delivery_attempt`` exceeds it to the DLQ and acks it);
* ``receive`` is a unary pull of at most ``max_messages`` (so the flow never exceeds the caller's
  free concurrency) followed by ``ModifyAckDeadline(lease)``; ``nack(delay)`` and
  ``extend_lease`` are ``ModifyAckDeadline`` (0..600 s);
* Pub/Sub has no delayed delivery: a delayed ``send`` carries ``x-asya-deliver-after`` and a receiver
  that gets it early puts it back with ``ModifyAckDeadline(remaining)`` without handing it out
  (each such early delivery counts as a delivery attempt; delays above 600 s need several);
* ordering is not assumed; depth comes from Cloud Monitoring, which the emulator lacks.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.pubsub_v1 import PublisherAsyncClient, SubscriberAsyncClient, types
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcAsyncIOTransport

from asya_common.transport import _pubsub_admin as admin
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

DELIVER_AFTER = "x-asya-deliver-after"
MAX_ACK_DEADLINE = 600
_GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


@dataclass
class _Lease:
    ack_id: str
    deadline: float
    settled: bool = False


def _deadline_seconds(seconds: float) -> int:
    return max(0, min(MAX_ACK_DEADLINE, math.ceil(seconds - 1e-6)))


class PubSubTransport(Transport):
    """Transport over the Pub/Sub gRPC API (or its emulator when ``ASYA_PUBSUB_EMULATOR_HOST`` is set)."""

    name = "pubsub"
    #: Pub/Sub's 10 MB publish limit covers data and attributes: 4 KiB are kept for our attributes.
    max_message_bytes = 10_000_000 - 4096

    def __init__(self, settings: TransportSettings):
        self.settings = settings
        self.project = settings.pubsub_project
        self.publisher: PublisherAsyncClient | None = None
        self.subscriber: SubscriberAsyncClient | None = None
        self._limits: dict[str, dict[str, Any]] = {}

    async def connect(self) -> None:
        if self.publisher is not None:
            return
        host = self.settings.pubsub_emulator_host
        if host:
            self.publisher = PublisherAsyncClient(
                transport=PublisherGrpcAsyncIOTransport(
                    channel=grpc.aio.insecure_channel(host, options=_GRPC_OPTIONS), credentials=AnonymousCredentials()
                )
            )
            self.subscriber = SubscriberAsyncClient(
                transport=SubscriberGrpcAsyncIOTransport(
                    channel=grpc.aio.insecure_channel(host, options=_GRPC_OPTIONS), credentials=AnonymousCredentials()
                )
            )
        else:
            self.publisher, self.subscriber = PublisherAsyncClient(), SubscriberAsyncClient()

    async def close(self) -> None:
        for client in (self.publisher, self.subscriber):
            if client is not None:
                await client.transport.close()
        self.publisher = self.subscriber = None

    def topic(self, queue: str) -> str:
        return f"projects/{self.project}/topics/{queue}"

    def subscription(self, queue: str) -> str:
        return f"projects/{self.project}/subscriptions/{queue}"

    # -- queues ---------------------------------------------------------------------------------

    async def ensure_queue(self, spec: QueueSpec) -> list[EnsureResult]:
        results = []
        if spec.dlq_name:
            results.append(await admin.ensure(self, QueueSpec(name=spec.dlq_name, lease_seconds=spec.lease_seconds,
                                                              retention_seconds=spec.retention_seconds)))
        results.append(await admin.ensure(self, spec))
        self._limits.pop(spec.name, None)
        return results

    async def delete_queue(self, name: str) -> None:
        await admin.delete(self, name)
        self._limits.pop(name, None)

    async def _queue_limits(self, queue: str) -> dict[str, Any]:
        if queue not in self._limits:
            self._limits[queue] = await admin.read_attributes(self, queue)
        return self._limits[queue]

    # -- publishing -----------------------------------------------------------------------------

    async def send(self, queue: str, body: bytes, *, delay_seconds: float = 0.0) -> None:
        await self.send_many(queue, [body], delay_seconds=delay_seconds)

    async def send_many(self, queue: str, bodies: list[bytes], *, delay_seconds: float = 0.0) -> None:
        """Publishes in one request per ~9 MB; returns once Pub/Sub stored every message."""
        attributes = {DELIVER_AFTER: repr(time.time() + delay_seconds)} if delay_seconds > 0 else {}
        batch: list[types.PubsubMessage] = []
        size = 0
        for body in bodies:
            self.check_size(queue, body)
            if batch and (size + len(body) > self.max_message_bytes or len(batch) >= 1000):
                await self._publish(queue, batch)
                batch, size = [], 0
            batch.append(types.PubsubMessage(data=body, attributes=attributes))
            size += len(body)
        if batch:
            await self._publish(queue, batch)

    async def _publish(self, queue: str, messages: list[types.PubsubMessage]) -> None:
        try:
            await self.publisher.publish(topic=self.topic(queue), messages=messages, timeout=60)
        except gexc.NotFound:
            raise QueueNotFound(f"Pub/Sub topic {self.topic(queue)!r} does not exist") from None
        except gexc.GoogleAPICallError as exc:
            raise TransportError(f"Pub/Sub publish to {queue!r} failed: {exc}") from exc

    # -- consuming ------------------------------------------------------------------------------

    async def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 1.0, lease_seconds: float = 30.0
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        limits = await self._queue_limits(queue)
        while True:
            remaining = deadline - time.monotonic()
            started = time.monotonic()
            try:
                response = await self.subscriber.pull(
                    subscription=self.subscription(queue), max_messages=max_messages, timeout=max(remaining, 0.5)
                )
            except gexc.DeadlineExceeded:
                return []
            except gexc.NotFound:
                raise QueueNotFound(f"Pub/Sub subscription {self.subscription(queue)!r} does not exist") from None
            except gexc.GoogleAPICallError as exc:
                raise TransportError(f"Pub/Sub pull on {queue!r} failed: {exc}") from exc
            received = await self._admit(queue, response.received_messages, lease_seconds, started, limits)
            if received or time.monotonic() >= deadline:
                return received
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    async def _admit(self, queue, pulled, lease_seconds, started, limits) -> list[ReceivedMessage]:
        """Leases what may be handed out; defers early delayed messages and dead-letters over-delivered ones."""
        now = time.time()
        admitted, early = [], {}
        limit, dlq = limits.get("max_receive_count"), limits.get("dlq_name")
        for item in pulled:
            message = item.message
            count = item.delivery_attempt or 1
            not_before = float(message.attributes.get(DELIVER_AFTER, 0) or 0)
            if limit is not None and dlq and count > limit:
                await self._publish(dlq, [types.PubsubMessage(data=message.data, attributes=dict(message.attributes))])
                await self._call(queue, "Acknowledge", self.subscriber.acknowledge(
                    subscription=self.subscription(queue), ack_ids=[item.ack_id]))
            elif not_before > now:
                early.setdefault(_deadline_seconds(not_before - now), []).append(item.ack_id)
            else:
                admitted.append(item)
        for seconds, ack_ids in early.items():
            await self._modify(queue, ack_ids, seconds)
        if admitted:
            await self._modify(queue, [item.ack_id for item in admitted], _deadline_seconds(lease_seconds))
        return [
            ReceivedMessage(
                queue=queue,
                body=item.message.data,
                message_id=item.message.message_id,
                receive_count=item.delivery_attempt or 1,
                handle=_Lease(item.ack_id, started + lease_seconds),
                enqueued_at=item.message.publish_time.timestamp() if item.message.publish_time else None,
            )
            for item in admitted
        ]

    async def _modify(self, queue: str, ack_ids: list[str], seconds: int) -> None:
        await self._call(queue, "ModifyAckDeadline", self.subscriber.modify_ack_deadline(
            subscription=self.subscription(queue), ack_ids=ack_ids, ack_deadline_seconds=seconds
        ))

    async def _call(self, queue: str, operation: str, call) -> Any:
        """Awaits a subscriber RPC, turning API errors into this package's exceptions."""
        try:
            return await call
        except gexc.NotFound:
            raise QueueNotFound(f"Pub/Sub subscription {self.subscription(queue)!r} does not exist") from None
        except gexc.GoogleAPICallError as exc:
            raise TransportError(f"Pub/Sub {operation} on {queue!r} failed: {exc}") from exc

    def _live(self, message: ReceivedMessage) -> _Lease:
        lease: _Lease = message.handle
        if lease.settled or time.monotonic() > lease.deadline:
            raise LeaseLost.expired(message)
        return lease

    async def ack(self, message: ReceivedMessage) -> None:
        lease = self._live(message)
        lease.settled = True
        await self._call(message.queue, "Acknowledge", self.subscriber.acknowledge(
            subscription=self.subscription(message.queue), ack_ids=[lease.ack_id]))

    async def nack(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        try:
            lease = self._live(message)
        except LeaseLost:
            return
        lease.settled = True
        await self._modify(message.queue, [lease.ack_id], _deadline_seconds(delay_seconds))

    async def extend_lease(self, message: ReceivedMessage, seconds: float) -> None:
        lease = self._live(message)
        started = time.monotonic()
        await self._modify(message.queue, [lease.ack_id], _deadline_seconds(seconds))
        lease.deadline = started + seconds

    async def depth(self, queue: str) -> QueueDepth:
        return await admin.depth(self, queue)
