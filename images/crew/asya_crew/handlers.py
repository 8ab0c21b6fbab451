"""The terminal actors. They run on the ordinary runtime + sidecar in envelope mode.

``happy-end`` records the final payload as the result; ``error-end`` records the error (failed actor,
type, message, traceback of every attempt) together with the original payload, so a person can
inspect and replay it. Writes are idempotent per envelope id, so a redelivered envelope rewrites the
same record. Standard library only: this module runs inside the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asya_common.envelope import H_ERROR
from asya_common.settings import env_field, load_settings
from asya_common.status_store import FAILED, SUCCEEDED, StatusStore


@dataclass(frozen=True)
class CrewSettings:
    """Where the crew writes final records."""

    status_db: str = env_field("ASYA_STATUS_DB", default=".asya/status.sqlite3", help="status store (SQLite file)")


_store: StatusStore | None = None


def _status_store() -> StatusStore:
    global _store
    if _store is None:
        _store = StatusStore(load_settings(CrewSettings).status_db)
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
