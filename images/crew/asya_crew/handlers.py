"""The terminal actors. They run on the ordinary runtime + sidecar in envelope mode.

``happy-end`` records the final payload as the result; ``error-end`` records the error (failed actor,
type, message, traceback of every attempt) together with the original payload, so a person can
inspect and replay it. Each final record also appends the final event (``succeeded`` / ``failed``) that
ends a stream. Writes are idempotent per envelope id, so a redelivered envelope rewrites the same record
and appends no second event. ``ASYA_STATUS_DB`` is a SQLite path or a ``postgresql://`` URL (then the
crew scales to any number of replicas). Standard library only for SQLite: this module runs inside the
runtime; psycopg is imported only for a PostgreSQL URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asya_common.envelope import H_ERROR
from asya_common.settings import env_field, load_settings
from asya_common.status import FAILED, SUCCEEDED, StatusStore, open_store


@dataclass(frozen=True)
class CrewSettings:
    """Where the crew writes final records."""

    status_db: str = env_field("ASYA_STATUS_DB", default=".asya/status.sqlite3",
                               help="status store: a SQLite path or a postgresql:// URL (from a Secret)")


_store: StatusStore | None = None


def _status_store() -> StatusStore:
    global _store
    if _store is None:
        _store = open_store(load_settings(CrewSettings).status_db)
    return _store


def _last_actor(envelope: dict[str, Any]) -> str | None:
    prev = envelope.get("route", {}).get("prev") or []
    return prev[-1] if prev else None


def happy_end(envelope: dict[str, Any]) -> None:
    """Records a succeeded envelope; its payload is the result."""
    _status_store().record_final(envelope, SUCCEEDED, actor=_last_actor(envelope), result=envelope.get("payload"))
    return None


def error_end(envelope: dict[str, Any]) -> None:
    """Records a failed envelope with its error and original payload."""
    error = envelope.get("headers", {}).get(H_ERROR) or {
        "actor": _last_actor(envelope), "type": "Unknown", "message": "envelope reached error-end without an error record",
        "attempts": []}
    _status_store().record_final(envelope, FAILED, actor=error.get("actor") or _last_actor(envelope), error=error)
    return None
