"""Names shared by every status-store backend: statuses, event kinds, the Event row and the errors.

Standard library only: the runtime and the crew import this package inside the user's image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

PENDING, RUNNING, PAUSED = "pending", "running", "paused"
SUCCEEDED, FAILED, CANCELED, DEAD_LETTERED = "succeeded", "failed", "canceled", "dead_lettered"
STATUSES = (PENDING, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELED, DEAD_LETTERED)
FINAL = (SUCCEEDED, FAILED, CANCELED, DEAD_LETTERED)

# Event kinds (the ``kind`` column of the events feed).
CREATED, SPAWNED, FLY, RESUMED = "created", "spawned", "fly", "resumed"
EVENT_KINDS = (CREATED, RUNNING, SPAWNED, FLY, PAUSED, RESUMED, SUCCEEDED, FAILED, CANCELED, DEAD_LETTERED)
FINAL_EVENTS = FINAL

# Pause row states: waiting for input, taken by one resumer/expirer, and the three ends.
PAUSE_WAITING, PAUSE_CLAIMED = "paused", "claimed"
PAUSE_RESUMED, PAUSE_EXPIRED, PAUSE_CANCELED = "resumed", "expired", "canceled"


@dataclasses.dataclass(frozen=True)
class Event:
    """One row of the append-only events feed.

    ``seq`` is global and strictly increasing in commit order (0 for an event not yet written);
    ``root_id`` is the id of the envelope a client submitted (fan-out children share it); ``data``
    is any JSON value (a FLY chunk, the pause prompt and schema, spawned child ids, an error summary).
    """

    seq: int
    root_id: str | None
    envelope_id: str
    kind: str
    actor: str | None = None
    data: Any = None
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (what the gateway's SSE sends as ``data``)."""
        return dataclasses.asdict(self)


class StoreError(RuntimeError):
    """Base of the status store's own errors."""


class PauseNotFound(StoreError, KeyError):
    """No paused envelope has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "pause not found"


class PauseConflict(StoreError):
    """The pause exists but cannot be taken: already resumed, expired, canceled or claimed by another."""


class PauseInputInvalid(StoreError, ValueError):
    """Resume input breaks the pause's JSON Schema (the pause stays as it was). ``errors`` lists the problems."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = errors or [message]


class PauseSpecError(ValueError):
    """A handler's ``("PAUSE", {...})`` spec is malformed."""
