"""Connection settings for every transport, parsed once from ``ASYA_*`` env.

One settings class covers all brokers so that ``asya dev``, the sidecar, the crew and the
controller select and configure a transport the same way; each transport reads only its own fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from asya_common.envelope import DEFAULT_QUEUE_PREFIX
from asya_common.settings import env_field

TRANSPORTS = ("sqlite", "rabbitmq", "sqs", "pubsub")


@dataclass(frozen=True)
class TransportSettings:
    """Which broker to use and how to reach it."""

    kind: str = env_field("ASYA_TRANSPORT", default="sqlite", help="sqlite | rabbitmq | sqs | pubsub")
    queue_prefix: str = env_field("ASYA_QUEUE_PREFIX", default=DEFAULT_QUEUE_PREFIX, help="prefix of every queue name")
    sqlite_path: str = env_field("ASYA_SQLITE_PATH", default=".asya/queues.sqlite3", help="embedded queue database file")
    sqlite_synchronous: str = env_field(
        "ASYA_SQLITE_SYNCHRONOUS", default="NORMAL",
        help="NORMAL: a commit survives any process crash; FULL: also a power loss (one fsync per commit)")
    rabbitmq_url: str = env_field(
        "ASYA_RABBITMQ_URL", default="amqp://guest:guest@127.0.0.1:5672/", help="AMQP URL (user, password, vhost)"
    )
    rabbitmq_management_url: str = env_field(
        "ASYA_RABBITMQ_MANAGEMENT_URL", default="",
        help="management API base URL for queue depth; default: the AMQP host on port 15672, AMQP credentials")
    rabbitmq_exchange: str = env_field("ASYA_RABBITMQ_EXCHANGE", default="asya", help="direct exchange routing to actor queues")
    sqs_endpoint_url: str = env_field("ASYA_SQS_ENDPOINT_URL", default="", help="SQS endpoint; empty for AWS itself")
    sqs_region: str = env_field("ASYA_SQS_REGION", default="us-east-1", help="AWS region")
    pubsub_project: str = env_field("ASYA_PUBSUB_PROJECT", default="asya-local", help="GCP project of topics/subscriptions")
    pubsub_emulator_host: str = env_field(
        "ASYA_PUBSUB_EMULATOR_HOST", default="", help="host:port of the Pub/Sub emulator; empty for GCP itself"
    )

    def __post_init__(self) -> None:
        if self.kind not in TRANSPORTS:
            raise ValueError(f"ASYA_TRANSPORT={self.kind!r} is not one of {', '.join(TRANSPORTS)}")
        if self.sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"ASYA_SQLITE_SYNCHRONOUS={self.sqlite_synchronous!r} is not NORMAL or FULL")
