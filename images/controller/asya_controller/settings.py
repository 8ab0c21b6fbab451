"""The controller's configuration, parsed once from ``ASYA_CONTROLLER_*`` (plus the transport's ``ASYA_*``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from asya_common.settings import Duration, env_field


@dataclass(frozen=True)
class ControllerSettings:
    """Everything the controller reads from its environment besides the transport settings."""

    namespaces: tuple = env_field(
        "ASYA_CONTROLLER_NAMESPACES", default=(), help="comma list of namespaces to watch; empty = all"
    )
    resync: Duration = env_field("ASYA_CONTROLLER_RESYNC", default=Duration(60), help="full re-list period")
    dlq_interval: Duration = env_field(
        "ASYA_CONTROLLER_DLQ_INTERVAL", default=Duration(30), help="how often DLQ depth and age are measured"
    )
    cleanup_timeout: Duration = env_field(
        "ASYA_CONTROLLER_CLEANUP_TIMEOUT",
        default=Duration(300),
        help="give up deleting an opted-in actor's queues after this long and release its finalizer",
    )
    lease_name: str = env_field("ASYA_CONTROLLER_LEASE_NAME", default="asya-controller", help="leader-election Lease")
    lease_namespace: str = env_field(
        "ASYA_CONTROLLER_LEASE_NAMESPACE", default="default", help="namespace of the leader-election Lease"
    )
    lease_duration: Duration = env_field(
        "ASYA_CONTROLLER_LEASE_DURATION", default=Duration(15), help="a leader that stops renewing loses it after this"
    )
    identity: str = env_field(
        "ASYA_CONTROLLER_IDENTITY", default=socket.gethostname(), help="this replica's name in the Lease (pod name)"
    )
    kubeconfig: str = env_field(
        "ASYA_CONTROLLER_KUBECONFIG", default="", help="kubeconfig file; empty = in-cluster service account"
    )
    metrics_port: int = env_field("ASYA_METRICS_PORT", default=8080, help="port of /metrics, /healthz, /readyz")
    metrics_host: str = env_field("ASYA_METRICS_HOST", default="0.0.0.0", help="bind address of the metrics server")
    log_level: str = env_field("ASYA_LOG_LEVEL", default="INFO", help="log level")
    status_db: str = env_field(
        "ASYA_STATUS_DB", default="",
        help="status store (postgresql:// URL or SQLite path): envelopes found in a DLQ are marked dead_lettered")
