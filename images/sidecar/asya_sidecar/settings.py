"""Typed sidecar settings, parsed once from ``ASYA_*`` env (see docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from asya_common.protocol import DEFAULT_SOCKET_PATH
from asya_common.settings import Duration, env_field


@dataclass(frozen=True)
class RetryPolicy:
    """The actor's resiliency policy (chart: ``resiliency.policies.default``)."""

    max_attempts: int = env_field("ASYA_RETRY_MAX_ATTEMPTS", default=3, help="attempts before error-end (>= 1)")
    backoff: str = env_field("ASYA_RETRY_BACKOFF", default="exponential", help="exponential | constant")
    initial_interval: Duration = env_field("ASYA_RETRY_INITIAL_INTERVAL", default=Duration(1.0), help="first delay")
    max_interval: Duration = env_field("ASYA_RETRY_MAX_INTERVAL", default=Duration(60.0), help="largest delay")
    jitter: float = env_field("ASYA_RETRY_JITTER", default=0.2, help="+/- fraction of random spread on each delay")
    non_retryable_errors: tuple = env_field(
        "ASYA_RETRY_NON_RETRYABLE_ERRORS", default=(), help="comma-separated exception classes (and subclasses) never retried"
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"ASYA_RETRY_MAX_ATTEMPTS must be >= 1, got {self.max_attempts}")
        if self.backoff not in ("exponential", "constant"):
            raise ValueError(f"ASYA_RETRY_BACKOFF must be 'exponential' or 'constant', got {self.backoff!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"ASYA_RETRY_JITTER must be in [0, 1), got {self.jitter}")
        if self.max_interval < self.initial_interval:
            raise ValueError("ASYA_RETRY_MAX_INTERVAL must not be smaller than ASYA_RETRY_INITIAL_INTERVAL")


@dataclass(frozen=True)
class SidecarSettings:
    """Everything the sidecar reads from its environment, apart from the transport and retry policy."""

    actor: str = env_field("ASYA_ACTOR_NAME", required=True, help="actor whose queue this sidecar consumes")
    socket_path: str = env_field("ASYA_SOCKET_PATH", default=DEFAULT_SOCKET_PATH, help="runtime socket")
    concurrency: int = env_field("ASYA_CONCURRENCY", default=1, help="handler calls at once (the runtime's threads)")
    prefetch: int = env_field(
        "ASYA_PREFETCH", default=0,
        help="messages held at once, at least ASYA_CONCURRENCY; the extra ones are received, parsed and published "
             "while the handler runs (0 = automatic: about 20 ms of handler work, asya_sidecar.prefetch)")
    actor_timeout: Duration = env_field("ASYA_ACTOR_TIMEOUT", default=Duration(300.0), help="per-call limit")
    lease_seconds: float = env_field("ASYA_LEASE_SECONDS", default=30.0, help="visibility timeout per receive")
    dlq_max_receive_count: int = env_field("ASYA_DLQ_MAX_RECEIVE_COUNT", default=10, help="deliveries before DLQ")
    shutdown_grace: Duration = env_field("ASYA_SHUTDOWN_GRACE", default=Duration(25.0), help="SIGTERM drain time")
    runtime_connect_timeout: Duration = env_field(
        "ASYA_RUNTIME_CONNECT_TIMEOUT", default=Duration(120.0), help="how long to wait for the runtime socket"
    )
    metrics_port: int = env_field("ASYA_METRICS_PORT", default=8080, help="/metrics and /healthz port (0 = any)")
    status_db: str = env_field(
        "ASYA_STATUS_DB", default="",
        help="status store for progress, FLY chunks and pauses: a SQLite path (asya dev) or a postgresql:// URL "
             "(Kubernetes: from a Secret); empty = none")
    events_queue_size: int = env_field("ASYA_EVENTS_QUEUE_SIZE", default=10000,
                                       help="events buffered for the status store before FLY chunks are dropped")
    events_flush_timeout: Duration = env_field(
        "ASYA_EVENTS_FLUSH_TIMEOUT", default=Duration(1.0),
        help="longest wait for queued FLY chunks to be written before a call's outputs are published")
    pause_expiry_interval: Duration = env_field(
        "ASYA_PAUSE_EXPIRY_INTERVAL", default=Duration(5.0), help="how often expired pauses are ended (0 = never)")
    log_level: str = env_field("ASYA_LOG_LEVEL", default="INFO", help="log level")
    ensure_queues: bool = env_field(
        "ASYA_ENSURE_QUEUES", default=False, help="create own queue + DLQ at start (dev; the controller does it in k8s)"
    )
    max_message_bytes: int = env_field(
        "ASYA_MAX_MESSAGE_BYTES", default=0,
        help="largest message this actor publishes (0 = the broker's own limit); bigger error-end records are truncated")
    metrics_host: str = env_field(
        "ASYA_METRICS_HOST", default="0.0.0.0", help="address of /metrics and probes (asya dev: 127.0.0.1)")

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"ASYA_CONCURRENCY must be >= 1, got {self.concurrency}")
        if self.prefetch and self.prefetch < self.concurrency:
            raise ValueError(f"ASYA_PREFETCH must be 0 (automatic) or >= ASYA_CONCURRENCY={self.concurrency}, "
                             f"got {self.prefetch}")
        if self.lease_seconds < 1:
            raise ValueError(f"ASYA_LEASE_SECONDS must be >= 1, got {self.lease_seconds}")
        if self.actor_timeout <= 0:
            raise ValueError(f"ASYA_ACTOR_TIMEOUT must be more than 0s, got {self.actor_timeout:g}")
        if self.runtime_connect_timeout <= 0:
            raise ValueError(f"ASYA_RUNTIME_CONNECT_TIMEOUT must be more than 0s, got {self.runtime_connect_timeout:g}")
