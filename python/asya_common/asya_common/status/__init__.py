"""The status store: envelope records, the events feed and paused envelopes, on SQLite or PostgreSQL.

``open_store(location)`` is the one entry point: a file path or ``sqlite:///path`` opens SQLite
(standard library, WAL; ``asya dev`` and single nodes), ``postgresql://...`` opens PostgreSQL
through psycopg 3 (the ``postgres`` extra; imported only then). Schema migrations run at open.
See docs/status-store.md.

Importing this package is standard-library only (the runtime and the crew import it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asya_common.status.store import StatusStore

from asya_common.status.model import (
    CANCELED, CREATED, DEAD_LETTERED, EVENT_KINDS, FAILED, FINAL, FLY, PAUSED, PENDING, RESUMED, RUNNING, SPAWNED,
    STATUSES, SUCCEEDED, Event, PauseConflict, PauseInputInvalid, PauseNotFound, PauseSpecError, StoreError,
)


def open_store(url_or_path: str | Path) -> "StatusStore":
    """Opens (and migrates) the status store at a path, ``sqlite:///path`` or ``postgresql://`` URL.

    Raises:
        ValueError: An unsupported URL scheme or an empty location.
        RuntimeError: A PostgreSQL URL without psycopg installed.
    """
    from asya_common.status.store import StatusStore
    return StatusStore(url_or_path)


def __getattr__(name: str) -> Any:
    """``StatusStore`` and ``is_settled`` load the store (and sqlite3) on first use: a sidecar without a status
    store, which imports this package for the model only, saves about 1.4 MB of memory."""
    if name in ("StatusStore", "is_settled"):
        from asya_common.status import store
        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CANCELED", "CREATED", "DEAD_LETTERED", "EVENT_KINDS", "FAILED", "FINAL", "FLY", "PAUSED", "PENDING", "RESUMED",
    "RUNNING", "SPAWNED", "STATUSES", "SUCCEEDED", "Event", "PauseConflict", "PauseInputInvalid", "PauseNotFound",
    "PauseSpecError", "StatusStore", "StoreError", "is_settled", "open_store",
]
