"""Transports: one interface (:mod:`.base`), one module per broker, chosen by ``ASYA_TRANSPORT``.

Broker client libraries are optional extras (``asya_common[rabbitmq]``, ``[sqs]``, ``[pubsub]``),
so each implementation is imported only when selected.
"""

from __future__ import annotations

import importlib

from asya_common.transport.base import (
    AckFailed,
    EnsureResult,
    LeaseLost,
    MessageTooLarge,
    QueueDepth,
    QueueNotFound,
    QueueSpec,
    ReceivedMessage,
    Transport,
    TransportError,
)
from asya_common.transport.config import TRANSPORTS, TransportSettings

_IMPLEMENTATIONS = {
    "sqlite": ("asya_common.transport.sqlite", "SQLiteTransport"),
    "rabbitmq": ("asya_common.transport.rabbitmq", "RabbitMQTransport"),
    "sqs": ("asya_common.transport.sqs", "SQSTransport"),
    "pubsub": ("asya_common.transport.pubsub", "PubSubTransport"),
}
_EXTRAS = {"rabbitmq": "rabbitmq", "sqs": "sqs", "pubsub": "pubsub"}


def create_transport(settings: TransportSettings) -> Transport:
    """Instantiates the transport named by ``settings.kind`` (not yet connected).

    Raises:
        TransportError: The broker's client library is not installed; the message names the extra.
    """
    module_name, class_name = _IMPLEMENTATIONS[settings.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(settings.kind, settings.kind)
        raise TransportError(
            f"transport {settings.kind!r} needs its client library: pip install 'asya_common[{extra}]' ({exc})"
        ) from exc
    return getattr(module, class_name)(settings)


__all__ = [
    "TRANSPORTS",
    "AckFailed",
    "EnsureResult",
    "LeaseLost",
    "MessageTooLarge",
    "QueueDepth",
    "QueueNotFound",
    "QueueSpec",
    "ReceivedMessage",
    "Transport",
    "TransportError",
    "TransportSettings",
    "create_transport",
]
