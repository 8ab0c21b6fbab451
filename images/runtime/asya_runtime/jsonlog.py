"""One JSON object per log line on stderr (stdlib logging; structlog is not allowed in the runtime).

Every line carries ``ts``, ``level``, ``msg``, ``actor``, ``handler`` and, while a call is being
served, ``envelope_id`` (taken from a context variable, so handler code that logs through the
standard ``logging`` module gets it too, also from worker threads), plus ``trace_id``/``span_id`` of
the sidecar's hop span when the envelope carries a W3C ``traceparent`` header (no OpenTelemetry here).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import datetime, timezone

current_envelope_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("asya_envelope_id", default=None)
current_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("asya_trace", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_of(envelope: object) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` from the envelope's ``traceparent`` header, or None when absent/malformed."""
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    value = headers.get("traceparent") if isinstance(headers, dict) else None
    match = _TRACEPARENT.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one compact JSON line."""

    def __init__(self, actor: str, handler: str):
        super().__init__()
        self.actor = actor
        self.handler = handler

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
            "actor": self.actor,
            "handler": self.handler,
        }
        envelope_id = current_envelope_id.get()
        if envelope_id is not None:
            line["envelope_id"] = envelope_id
        trace = current_trace.get()
        if trace is not None:
            line["trace_id"], line["span_id"] = trace
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=repr)


def configure(level: str, actor: str, handler: str) -> None:
    """Routes the root logger to stderr as JSON lines at ``level``."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter(actor, handler))
    root = logging.getLogger()
    root.handlers[:] = [stream]
    root.setLevel(level.strip().upper())


def flush() -> None:
    """Flushes every root handler (before ``os._exit``)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - best effort before exiting
            pass
