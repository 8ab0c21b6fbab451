"""Runtime settings: the ``ASYA_*`` variables of docs/configuration.md ("Runtime"), parsed once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from asya_common.protocol import DEFAULT_SOCKET_PATH, MAX_FRAME_BYTES
from asya_common.settings import SettingsError, env_field, load_settings

MODES = ("payload", "envelope")
SHUTDOWN_GRACE_SECONDS = 25.0  # SIGTERM: time in-flight calls get to finish


@dataclass(frozen=True)
class RuntimeSettings:
    """Typed runtime configuration (see docs/configuration.md)."""

    handler: str = env_field(
        "ASYA_HANDLER", required=True, help="handler to import: module.function or module.Class.method"
    )
    handler_mode: str = env_field("ASYA_HANDLER_MODE", default="payload", help="payload or envelope")
    handler_args: dict = env_field(
        "ASYA_HANDLER_ARGS", default_factory=dict, help="JSON keyword arguments for a class handler"
    )
    socket_path: str = env_field("ASYA_SOCKET_PATH", default=DEFAULT_SOCKET_PATH, help="Unix socket to serve")
    concurrency: int = env_field("ASYA_CONCURRENCY", default=1, help="calls served at once (threads for sync handlers)")
    actor_name: str = env_field("ASYA_ACTOR_NAME", default="", help="actor name, for logs")
    log_level: str = env_field("ASYA_LOG_LEVEL", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    max_message_bytes: int = env_field(
        "ASYA_MAX_MESSAGE_BYTES", default=100 * 1024 * 1024,
        help="largest envelope the broker allows; bounds the bytes a connection may buffer for one frame")
    frame_timeout: float = env_field(
        "ASYA_FRAME_TIMEOUT", default=30.0, help="seconds a frame's body may take to arrive after its header")


def load_runtime_settings(environ=None) -> RuntimeSettings:
    """Loads and checks the runtime settings.

    Args:
        environ: Mapping to read instead of the process environment (tests).

    Raises:
        SettingsError: A variable is missing or invalid; the message names it.
    """
    settings = load_settings(RuntimeSettings, environ)
    if settings.handler_mode not in MODES:
        raise SettingsError(f"ASYA_HANDLER_MODE={settings.handler_mode!r} is invalid: expected one of {list(MODES)}")
    if settings.concurrency < 1:
        raise SettingsError(f"ASYA_CONCURRENCY={settings.concurrency!r} is invalid: must be at least 1")
    level = settings.log_level.strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise SettingsError(f"ASYA_LOG_LEVEL={settings.log_level!r} is invalid: use DEBUG, INFO, WARNING or ERROR")
    if not 1024 <= settings.max_message_bytes <= MAX_FRAME_BYTES:
        raise SettingsError(f"ASYA_MAX_MESSAGE_BYTES={settings.max_message_bytes!r} is invalid: "
                            f"must be between 1024 and {MAX_FRAME_BYTES}")
    if not 0 < settings.frame_timeout <= 3600:
        raise SettingsError(f"ASYA_FRAME_TIMEOUT={settings.frame_timeout!r} is invalid: seconds in (0, 3600]")
    if not settings.socket_path:
        raise SettingsError("ASYA_SOCKET_PATH is empty: a socket path is required")
    return settings
