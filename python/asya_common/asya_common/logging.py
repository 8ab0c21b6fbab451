"""Structured JSON logging for the long-running services (sidecar, crew, controller, CLI dev mesh).

Every line is one JSON object with ``ts``, ``level``, ``msg``, the component and actor, and whatever is
bound to the logger (``envelope_id`` on every line about an envelope). The runtime does not use
this module: it is stdlib-only and has its own tiny JSON formatter with the same keys and time format.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

import structlog


def configure_logging(component: str, level: str = "INFO", **static: Any) -> None:
    """Sends structlog and stdlib logging to stderr as JSON lines.

    Args:
        component: Name put on every line (``sidecar``, ``controller``...).
        level: Minimum level name.
        **static: Fields bound on every line, e.g. ``actor="judge"``.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"ASYA_LOG_LEVEL={level!r} is not a log level")
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamp,
    ]
    structlog.configure(
        processors=[
            *shared,
            _static_fields({"component": component, **static}),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _static_fields({"component": component, **static}),
                structlog.processors.EventRenamer("msg"),
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def _timestamp(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """``ts``: UTC ISO 8601 with milliseconds, exactly as the runtime's own JSON lines (one layout for both)."""
    event["ts"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return event


def _static_fields(fields: dict[str, Any]):
    def add(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add


def get_logger(**bound: Any) -> Any:
    """Returns a structlog logger with ``bound`` fields on every line."""
    return structlog.get_logger().bind(**bound)
