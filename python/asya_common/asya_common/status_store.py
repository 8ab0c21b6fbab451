"""Compatibility shim: the status store moved to :mod:`asya_common.status` (SQLite and PostgreSQL)."""

from asya_common.status import (  # noqa: F401 - re-exports
    CANCELED, DEAD_LETTERED, FAILED, FINAL, PAUSED, PENDING, RUNNING, SUCCEEDED, StatusStore, is_settled, open_store,
)
