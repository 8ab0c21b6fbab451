"""Typed gateway settings, parsed once from ``ASYA_*`` env (see docs/gateway.md and docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from asya_common.settings import Duration, env_field

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway reads from its environment, apart from the transport."""

    host: str = env_field("ASYA_GATEWAY_HOST", default="127.0.0.1", help="bind address (non-loopback needs API keys)")
    port: int = env_field("ASYA_GATEWAY_PORT", default=8080, help="HTTP port (0 = any free port)")
    status_db: str = env_field(
        "ASYA_STATUS_DB", default=".asya/status.sqlite3",
        help="status store: a SQLite path or a postgresql:// URL (from a Secret in Kubernetes)")
    tools_file: str = env_field("ASYA_GATEWAY_TOOLS", default="", help="tools config file (YAML or JSON); empty = no tools")
    api_keys_file: str = env_field(
        "ASYA_GATEWAY_API_KEYS", default="",
        help="API keys file (hashes + scopes, YAML/JSON); empty = no auth, loopback only")
    max_body_bytes: int = env_field("ASYA_GATEWAY_MAX_BODY_BYTES", default=1_048_576, help="largest request body")
    keepalive: Duration = env_field("ASYA_GATEWAY_KEEPALIVE", default=Duration(15.0), help="SSE keep-alive comment period")
    poll_interval: Duration = env_field(
        "ASYA_GATEWAY_POLL_INTERVAL", default=Duration(0.01), help="SQLite event feed poll period")
    expire_interval: Duration = env_field(
        "ASYA_GATEWAY_EXPIRE_INTERVAL", default=Duration(5.0),
        help="how often expired pauses are failed or resumed (once across replicas); 0 = never")
    public_url: str = env_field("ASYA_GATEWAY_PUBLIC_URL", default="", help="base of status/stream URLs in answers")
    log_level: str = env_field("ASYA_LOG_LEVEL", default="INFO", help="log level")

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise ValueError(f"ASYA_GATEWAY_MAX_BODY_BYTES must be >= 1024, got {self.max_body_bytes}")
        if self.keepalive <= 0:
            raise ValueError("ASYA_GATEWAY_KEEPALIVE must be > 0")

    @property
    def loopback(self) -> bool:
        """True when the bind address only accepts local connections."""
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")
