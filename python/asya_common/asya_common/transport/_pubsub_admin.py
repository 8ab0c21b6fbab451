"""Pub/Sub administration for :mod:`.pubsub`: topics, subscriptions, dead-letter policies, depth.

Kept apart from the message path so that the transport module stays readable. A queue is a topic
plus a subscription of the same name; the subscription label ``asya-max-receive-count`` keeps the
configured limit, since Pub/Sub clamps ``max_delivery_attempts`` to 5..100.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.pubsub_v1 import types

from asya_common.transport.base import (
    EnsureResult,
    QueueDepth,
    QueueNotFound,
    QueueSpec,
    TransportError,
    drift_between,
)

if TYPE_CHECKING:
    from asya_common.transport.pubsub import PubSubTransport

LIMIT_LABEL = "asya-max-receive-count"
MIN_ATTEMPTS, MAX_ATTEMPTS = 5, 100
MIN_ACK_DEADLINE, MAX_ACK_DEADLINE = 10, 600
MAX_RETENTION = 7 * 24 * 3600
MIN_RETENTION = 600


def _subscription(transport: PubSubTransport, spec: QueueSpec) -> types.Subscription:
    subscription = types.Subscription(
        name=transport.subscription(spec.name),
        topic=transport.topic(spec.name),
        ack_deadline_seconds=int(min(MAX_ACK_DEADLINE, max(MIN_ACK_DEADLINE, spec.lease_seconds))),
        message_retention_duration=datetime.timedelta(
            seconds=min(MAX_RETENTION, max(MIN_RETENTION, spec.retention_seconds))
        ),
    )
    if spec.dlq_name:
        subscription.dead_letter_policy = types.DeadLetterPolicy(
            dead_letter_topic=transport.topic(spec.dlq_name),
            max_delivery_attempts=min(MAX_ATTEMPTS, max(MIN_ATTEMPTS, spec.max_receive_count)),
        )
        subscription.labels = {LIMIT_LABEL: str(spec.max_receive_count)}
    return subscription


def _attributes(subscription: types.Subscription) -> dict[str, Any]:
    policy = subscription.dead_letter_policy
    topic = policy.dead_letter_topic if policy else ""
    limit = subscription.labels.get(LIMIT_LABEL) or (policy.max_delivery_attempts if topic else None)
    return {
        "dlq_name": topic.rsplit("/", 1)[-1] if topic else None,
        "max_receive_count": int(limit) if limit else None,
    }


async def ensure(transport: PubSubTransport, spec: QueueSpec) -> EnsureResult:
    """Creates the topic and subscription when missing; otherwise compares the subscription's settings."""
    created = False
    try:
        await transport.publisher.create_topic(name=transport.topic(spec.name))
        created = True
    except gexc.AlreadyExists:
        pass
    try:
        await transport.subscriber.create_subscription(request=_subscription(transport, spec))
        return EnsureResult(queue=spec.name, created=True)
    except gexc.AlreadyExists:
        pass
    actual = _attributes(await transport.subscriber.get_subscription(subscription=transport.subscription(spec.name)))
    wanted = spec.attributes() if spec.dlq_name else {"dlq_name": None}
    return EnsureResult(queue=spec.name, created=created, drift=drift_between(wanted, actual))


async def read_attributes(transport: PubSubTransport, queue: str) -> dict[str, Any]:
    """The DLQ name and receive limit of ``queue``'s subscription."""
    try:
        subscription = await transport.subscriber.get_subscription(subscription=transport.subscription(queue))
    except gexc.NotFound:
        raise QueueNotFound(f"Pub/Sub subscription {transport.subscription(queue)!r} does not exist") from None
    return _attributes(subscription)


async def delete(transport: PubSubTransport, queue: str) -> None:
    """Deletes the subscription and the topic; missing ones are fine."""
    for call, path in (
        (transport.subscriber.delete_subscription, {"subscription": transport.subscription(queue)}),
        (transport.publisher.delete_topic, {"topic": transport.topic(queue)}),
    ):
        try:
            await call(**path)
        except gexc.NotFound:
            pass


async def depth(transport: PubSubTransport, queue: str) -> QueueDepth:
    """Undelivered messages from Cloud Monitoring (``subscription/num_undelivered_messages``).

    Pub/Sub does not split ready from leased messages: both count as ``ready``. The metric lags by
    about a minute. The emulator has no Cloud Monitoring, so this raises there.
    """
    if transport.settings.pubsub_emulator_host:
        raise TransportError("queue depth is not available on the Pub/Sub emulator (no Cloud Monitoring)")
    return await asyncio.to_thread(_monitoring_depth, transport.project, queue)


def _monitoring_depth(project: str, queue: str) -> QueueDepth:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/monitoring.read"])
    now = datetime.datetime.now(datetime.timezone.utc)
    params = {
        "filter": 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" '
        f'AND resource.labels.subscription_id="{queue}"',
        "interval.startTime": (now - datetime.timedelta(minutes=5)).isoformat(),
        "interval.endTime": now.isoformat(),
    }
    response = AuthorizedSession(credentials).get(
        f"https://monitoring.googleapis.com/v3/projects/{project}/timeSeries", params=params, timeout=10
    )
    if response.status_code != 200:
        raise TransportError(f"Cloud Monitoring depth of {queue!r} failed: {response.status_code} {response.text[:200]}")
    series = response.json().get("timeSeries", [])
    points = series[0]["points"] if series else []
    ready = int(points[0]["value"].get("int64Value", 0)) if points else 0
    return QueueDepth(ready=ready, in_flight=0)
