"""The built-in ``fan-in`` actor: joins the children of one Flow DSL fan-out and sends the parent on once.

A fan-out router emits, for one group (``x-asya-fanin.group``), a *parent carrier* (the envelope with
the flow state, keeping the parent's id, routed ``fan-in`` -> rest of the flow) and one *child* per
item (routed ``actor`` -> ``fan-in``). Here:

- a child's result is stored under (group, index) with insert-if-absent, so a redelivered child is
  counted once; the child then ends (happy-end records it as a finished branch of the parent);
- the parent carrier checks whether every child has arrived. If so it continues with the ordered
  results written into the state (``into``). If not, it raises ``FanInPending`` and the sidecar retries
  it later with backoff (the fan-in's retry policy is the poll schedule). After ``ASYA_FANIN_TIMEOUT``
  (from the group's first arrival) it goes to error-end as ``FanInTimeout`` naming the missing children.

Only the parent carrier ever emits the continuation, so children racing each other cannot emit twice;
a crash before the continuation is published redelivers the carrier, which emits it then (at-least-once,
same envelope id). Standard library only: this module runs inside the runtime.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from asya_common.envelope import ERROR_END, H_ERROR
from asya_common.settings import Duration, env_field, load_settings
from asya_common.status.backends import open_backend

FAN_IN_HEADER = "x-asya-fanin"
log = logging.getLogger("asya.fanin")  # JSON lines with the envelope id, through the runtime's log handler

class FanInPending(Exception):
    """Not every child has arrived yet; the sidecar retries the parent carrier later."""


class FanInError(ValueError):
    """The envelope is not a fan-in member (no or malformed ``x-asya-fanin`` header)."""


@dataclass(frozen=True)
class FanInSettings:
    """Where the fan-in keeps its groups, and how long a group may wait for its children."""

    status_db: str = env_field("ASYA_STATUS_DB", default=".asya/status.sqlite3", help="status store (path or URL)")
    timeout: Duration = env_field("ASYA_FANIN_TIMEOUT", default=Duration(300.0),
                                  help="how long a fan-out group may wait for its children")


class FanInStore:
    """The fan-in tables of the status store's database (schema migration 3), on SQLite or PostgreSQL."""

    def __init__(self, location: str):
        self._db = open_backend(location)
        self._db.migrate()

    def add_child(self, group: str, index: int, count: int, child_id: str, result: Any, now: float) -> bool:
        """Stores one child's result once; True when this call stored it (False: a redelivery)."""
        with self._db.write() as cur:
            cur.x("INSERT INTO fanin_groups (group_id, count, created_at) VALUES (?, ?, ?) "
                  "ON CONFLICT (group_id) DO NOTHING", (group, count, now))
            return cur.x("INSERT INTO fanin_children (group_id, idx, child_id, result, arrived_at) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, idx) DO NOTHING",
                         (group, index, child_id, json.dumps(result), now)).rowcount == 1

    def check(self, group: str, count: int, parent_id: str, now: float) -> tuple[list[Any] | None, list[int], float]:
        """For the parent carrier: (ordered results or None, missing child indexes, group creation time)."""
        with self._db.write() as cur:
            cur.x("INSERT INTO fanin_groups (group_id, parent_id, count, created_at) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (group_id) DO UPDATE SET parent_id = excluded.parent_id",
                  (group, parent_id, count, now))
            created_at = cur.x("SELECT created_at FROM fanin_groups WHERE group_id = ?", (group,)).fetchone()[0]
            rows = cur.x("SELECT idx, result FROM fanin_children WHERE group_id = ? ORDER BY idx", (group,)).fetchall()
            present = {idx: result for idx, result in rows}
            missing = [i for i in range(count) if i not in present]
            if missing:
                return None, missing, created_at
            cur.x("UPDATE fanin_groups SET completed_at = COALESCE(completed_at, ?) WHERE group_id = ?", (now, group))
            return [json.loads(present[i]) for i in range(count)], [], created_at

    def mark_failed(self, group: str, now: float) -> None:
        """Records that the group timed out (its parent went to error-end)."""
        with self._db.write() as cur:
            cur.x("UPDATE fanin_groups SET failed_at = COALESCE(failed_at, ?) WHERE group_id = ?", (now, group))

    def counts(self, group: str) -> tuple[int, int]:
        """(children stored, expected) for ``group``; (0, 0) when unknown. For operators and tests."""
        with self._db.read() as cur:
            row = cur.x("SELECT count FROM fanin_groups WHERE group_id = ?", (group,)).fetchone()
            stored = cur.x("SELECT COUNT(*) FROM fanin_children WHERE group_id = ?", (group,)).fetchone()[0]
        return (stored, row[0]) if row else (0, 0)


_store: FanInStore | None = None
_settings: FanInSettings | None = None
_lock = threading.Lock()


def _open() -> tuple[FanInStore, FanInSettings]:
    global _store, _settings
    with _lock:
        if _store is None:
            _settings = load_settings(FanInSettings)
            _store = FanInStore(_settings.status_db)
    return _store, _settings


def _member(envelope: dict[str, Any]) -> dict[str, Any]:
    info = envelope.get("headers", {}).get(FAN_IN_HEADER)
    if not (isinstance(info, dict) and isinstance(info.get("group"), str) and info.get("role") in ("child", "parent")
            and isinstance(info.get("count"), int) and info["count"] >= 0):
        raise FanInError(f"envelope reached fan-in without a valid {FAN_IN_HEADER} header: {info!r:.200}")
    if info["role"] == "child" and not (isinstance(info.get("index"), int) and 0 <= info["index"] < info["count"]):
        raise FanInError(f"fan-in child has a bad index: {info!r:.200}")
    if info["role"] == "parent" and not (isinstance(info.get("into"), list) and info["into"]):
        raise FanInError(f"fan-in parent carrier has no 'into' keys: {info!r:.200}")
    return info


def _store_into(state: Any, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        state = state[key]
    state[keys[-1]] = value


def fan_in(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """Handler of the ``fan-in`` actor (envelope mode); see the module docstring."""
    info = _member(envelope)
    store, settings = _open()
    now = time.time()
    group, count = info["group"], info["count"]
    if info["role"] == "child":
        store.add_child(group, info["index"], count, envelope["id"], envelope.get("payload"), now)
        return None
    results, missing, created_at = store.check(group, count, envelope["id"], now)
    if results is not None:
        _store_into(envelope["payload"], info["into"], results)
        log.info("fan-out group joined", extra={"group": group, "children": count, "waited": round(now - created_at, 3)})
        del envelope["headers"][FAN_IN_HEADER]
        return envelope
    waited = now - created_at
    if waited < float(settings.timeout):
        raise FanInPending(f"{count - len(missing)} of {count} children of {group} arrived; waiting")
    store.mark_failed(group, now)
    log.error("fan-out group timed out", extra={"group": group, "missing": len(missing), "children": count})
    names = ", ".join(f"{envelope['id']}-{i + 1}" for i in missing)
    envelope["headers"][H_ERROR] = {
        "actor": "fan-in", "type": "FanInTimeout", "traceback": "", "attempts": [],
        "message": f"{len(missing)} of {count} fan-out children did not arrive within {float(settings.timeout):g}s "
                   f"(group {group}): {names}"}
    envelope["route"]["next"] = [ERROR_END]  # the built-in fan-in fails the parent itself: no retry can help
    return envelope
