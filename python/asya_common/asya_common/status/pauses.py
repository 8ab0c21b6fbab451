"""Paused envelopes: parked by the sidecar, claimed exactly once by a resume or by the expirer.

A pause is keyed by envelope id. ``park`` inserts it (a redelivery of the same message finds it
and parks nothing new; a pause that expired, e.g. replayed with ``asya replay``, or one resumed at
an earlier hop is replaced), marks the record ``paused`` and appends the ``paused`` event in one
transaction, so the sidecar may ack right after. Taking a pause is two steps so that nothing is
lost if the taker dies in between: ``claim_pause`` moves it ``paused -> claimed`` atomically (one
winner; a claim older than ``lease`` seconds may be taken over), the taker publishes, then
``finish_pause`` records the end (``resumed`` or ``expired``); ``release_pause`` undoes a claim
whose publish failed. Mixed into :class:`~asya_common.status.store.StatusStore`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from asya_common.status.model import (
    CANCELED, FINAL, PAUSE_CANCELED, PAUSE_CLAIMED, PAUSE_EXPIRED, PAUSE_RESUMED, PAUSE_WAITING, PAUSED, RESUMED,
    RUNNING, Event, PauseConflict, PauseNotFound,
)
from asya_common.status.spec import normalize_spec

PAUSE_COLUMNS = "id, root_id, actor, hop, status, envelope, spec, created_at, expires_at, claimed_at, resolved_at"
CLAIM_LEASE = 60.0


def to_pause(row: tuple) -> dict[str, Any]:
    """A ``pauses`` row as a JSON-ready dict (``envelope`` is the advanced envelope to resume)."""
    keys = [k.strip() for k in PAUSE_COLUMNS.split(",")]
    pause = dict(zip(keys, row))
    pause["envelope"] = json.loads(pause["envelope"])
    pause["spec"] = json.loads(pause["spec"])
    pause["next_actor"] = pause["envelope"]["route"]["curr"]
    return pause


class PauseMixin:
    """Pause operations of the status store (needs ``_db``, ``_root_of`` and ``_append``)."""

    def park(self, envelope: dict[str, Any], spec: dict[str, Any], actor: str) -> bool:
        """Parks the advanced ``envelope`` (``route.curr`` = the actor to resume at) until resumed.

        Args:
            envelope: The envelope as it will continue (already routed one hop past ``actor``).
            spec: The pause spec (normalised here: see :func:`~asya_common.status.spec.normalize_spec`).
            actor: The actor that paused.

        Returns:
            True when newly parked; False when this pause existed already (a redelivery).
        """
        spec = normalize_spec(spec)
        now = time.time()
        expires = now + spec["timeout_seconds"] if spec["timeout_seconds"] is not None else None
        hop = len(envelope["route"].get("prev", []))
        with self._db.write() as cur:
            root = self._root_of(cur, envelope["id"], envelope.get("parent_id"))
            record = cur.x("SELECT status FROM records WHERE id=?", (envelope["id"],)).fetchone()
            canceled = bool(record and record[0] == CANCELED)  # canceled meanwhile: park it as ended, it stops here
            inserted = cur.x(
                f"INSERT INTO pauses({PAUSE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL) ON CONFLICT(id) DO UPDATE "
                "SET root_id=excluded.root_id, actor=excluded.actor, hop=excluded.hop, status=excluded.status, "
                "envelope=excluded.envelope, spec=excluded.spec, created_at=excluded.created_at, "
                "expires_at=excluded.expires_at, claimed_at=NULL, resolved_at=NULL "
                "WHERE pauses.status=? OR (pauses.status=? AND pauses.hop <> excluded.hop)",
                (envelope["id"], root, actor, hop, PAUSE_CANCELED if canceled else PAUSE_WAITING,
                 json.dumps(envelope, ensure_ascii=False),
                 json.dumps(spec, ensure_ascii=False), now, expires, PAUSE_EXPIRED, PAUSE_RESUMED)).rowcount
            final = ",".join("?" * len(FINAL))
            if not inserted:
                row = cur.x("SELECT status FROM pauses WHERE id=?", (envelope["id"],)).fetchone()
                if row and row[0] == PAUSE_WAITING:  # redelivered: keep the record showing paused
                    cur.x(f"UPDATE records SET status=?, actor=? WHERE id=? AND status NOT IN ({final})",
                          (PAUSED, actor, envelope["id"], *FINAL))
                return False
            if canceled:
                return True
            cur.x("INSERT INTO records(id, parent_id, root_id, status, actor, envelope, created_at, updated_at) "
                  "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
                  f"actor=excluded.actor, envelope=excluded.envelope, updated_at=excluded.updated_at "
                  f"WHERE records.status NOT IN ({final})",
                  (envelope["id"], envelope.get("parent_id"), root, PAUSED, actor,
                   json.dumps(envelope, ensure_ascii=False), now, now, *FINAL))
            data = {k: spec[k] for k in ("prompt", "schema", "into", "on_timeout", "timeout_seconds")}
            data.update(expires_at=expires, next_actor=envelope["route"]["curr"])
            self._append(cur, [Event(0, root, envelope["id"], PAUSED, actor, data, now)])
            return True

    def get_pause(self, envelope_id: str) -> dict[str, Any] | None:
        """The pause of ``envelope_id`` in any state, or None."""
        with self._db.read() as cur:
            row = cur.x(f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE id=?", (envelope_id,)).fetchone()
        return to_pause(row) if row else None

    def list_pauses(self, *, status: str | None = PAUSE_WAITING, limit: int = 100) -> list[dict[str, Any]]:
        """Pauses in ``status`` (all states when None), oldest first."""
        sql = f"SELECT {PAUSE_COLUMNS} FROM pauses" + (" WHERE status=?" if status else "")
        with self._db.read() as cur:
            rows = cur.x(sql + " ORDER BY created_at, id LIMIT ?", ((status,) if status else ()) + (limit,)).fetchall()
        return [to_pause(r) for r in rows]

    def claim_pause(self, envelope_id: str, *, lease: float = CLAIM_LEASE) -> dict[str, Any]:
        """Takes a waiting pause for resuming; exactly one caller wins.

        A claim older than ``lease`` seconds (its taker died before publishing) can be taken again.

        Raises:
            PauseNotFound: No pause has this id.
            PauseConflict: It was resumed, expired, canceled, or another caller holds it.
        """
        now = time.time()
        with self._db.write() as cur:
            taken = cur.x("UPDATE pauses SET status=?, claimed_at=? WHERE id=? AND "
                          "(status=? OR (status=? AND claimed_at<?))",
                          (PAUSE_CLAIMED, now, envelope_id, PAUSE_WAITING, PAUSE_CLAIMED, now - lease)).rowcount
            row = cur.x(f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE id=?", (envelope_id,)).fetchone()
        if row is None:
            raise PauseNotFound(f"no paused envelope with id {envelope_id!r}")
        if not taken:
            state = row[4]
            detail = "is being resumed by another request" if state == PAUSE_CLAIMED else f"is already {state}"
            raise PauseConflict(f"pause {envelope_id!r} {detail}")
        return to_pause(row)

    def note_resumed(self, envelope_id: str, actor: str, data: dict[str, Any] | None = None) -> None:
        """Appends the ``resumed`` event of a claimed pause, before its envelope is published.

        Written first so that it precedes every event of the next actor (which may run as soon as the
        envelope is published); a failed publish is followed by a ``paused`` event (``release_pause``).
        """
        with self._db.write() as cur:
            row = cur.x("SELECT root_id FROM pauses WHERE id=?", (envelope_id,)).fetchone()
            if row is None:
                raise PauseNotFound(f"no paused envelope with id {envelope_id!r}")
            self._append(cur, [Event(0, row[0], envelope_id, RESUMED, actor, data or {}, time.time())])

    def release_pause(self, envelope_id: str, reason: str | None = None) -> None:
        """Puts a claimed pause back to waiting (its publish failed; nothing was resumed).

        Args:
            envelope_id: The pause.
            reason: Why the resume failed; when given, a ``paused`` event says so (after ``note_resumed``).
        """
        with self._db.write() as cur:
            cur.x("UPDATE pauses SET status=?, claimed_at=NULL WHERE id=? AND status=?",
                  (PAUSE_WAITING, envelope_id, PAUSE_CLAIMED))
            if reason is not None:
                row = cur.x("SELECT root_id, actor FROM pauses WHERE id=?", (envelope_id,)).fetchone()
                if row is not None:
                    self._append(cur, [Event(0, row[0], envelope_id, PAUSED, row[1], {"resume_failed": reason},
                                             time.time())])

    def finish_pause(self, envelope_id: str, outcome: str, *, actor: str | None, resumed: bool,
                     data: dict[str, Any] | None = None, event: bool = True) -> None:
        """Records the end of a claimed pause after its envelope was published.

        Args:
            envelope_id: The pause.
            outcome: The pause's end state: ``resumed`` or ``expired``.
            actor: The actor the envelope was published to (``error-end`` for a timeout failure).
            resumed: True when the envelope continues its route (record -> running at ``actor`` and a
                ``resumed`` event); False for a timeout failure (the crew records the failure).
            data: Event data (what was merged and where).
            event: False when ``note_resumed`` already wrote the ``resumed`` event.
        """
        now = time.time()
        with self._db.write() as cur:
            row = cur.x("SELECT created_at, root_id FROM pauses WHERE id=?", (envelope_id,)).fetchone()
            if row is None:
                raise PauseNotFound(f"no paused envelope with id {envelope_id!r}")
            cur.x("UPDATE pauses SET status=?, resolved_at=? WHERE id=?", (outcome, now, envelope_id))
            final = ",".join("?" * len(FINAL))
            move = ", status=?, actor=?" if resumed else ""
            cur.x(f"UPDATE records SET paused_seconds=paused_seconds+?, updated_at=?{move} "
                  f"WHERE id=? AND status NOT IN ({final})",
                  (max(0.0, now - row[0]), now, *((RUNNING, actor) if resumed else ()), envelope_id, *FINAL))
            if resumed and event:
                self._append(cur, [Event(0, row[1], envelope_id, RESUMED, actor, {"outcome": outcome, **(data or {})},
                                         now)])

    def claim_expired(self, now: float | None = None, *, limit: int = 100,
                      lease: float = CLAIM_LEASE) -> list[dict[str, Any]]:
        """Claims every waiting pause whose timeout passed (and stale claims of expired ones).

        Atomic across processes: each expired pause is returned to exactly one caller.
        """
        now = time.time() if now is None else now
        with self._db.write() as cur:
            rows = cur.x(
                f"UPDATE pauses SET status=?, claimed_at=? WHERE id IN (SELECT id FROM pauses WHERE "
                f"expires_at IS NOT NULL AND expires_at<=? AND (status=? OR (status=? AND claimed_at<?)) "
                f"ORDER BY expires_at LIMIT ?{self._db.skip_locked}) RETURNING {PAUSE_COLUMNS}",
                (PAUSE_CLAIMED, now, now, PAUSE_WAITING, PAUSE_CLAIMED, now - lease, limit)).fetchall()
        return [to_pause(r) for r in rows]
