"""``asya status`` without an id: recent envelopes, filtered, in a view a person reads at a glance.

One line per envelope: id, status, when (``3m ago``), the route it took with the time spent at each
actor (from the status store's events), and for a failure the last error's type and message. ``--json``
prints the records (with their ``hops``) as JSON lines for scripts. Filters: ``--status``, ``--actor``
(the actor the envelope is, or last was, at), ``--since`` (``10m``, ``2h``, ``1d`` or an ISO time) and
``--limit``. A replayed envelope keeps the errors of its earlier runs (``previous_failures``).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Any

from asya_common import envelope as env
from asya_cli.common import CliError

PREVIOUS_FAILURES = "x-asya-previous-failures"  # replay: the error records of earlier runs, oldest first
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time of ``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``) or an ISO time.

    Raises:
        CliError: Neither form.
    """
    now = time.time() if now is None else now
    raw = text.strip().lower()
    if raw and raw[-1] in _UNITS and raw[:-1].replace(".", "", 1).isdigit():
        return now - float(raw[:-1]) * _UNITS[raw[-1]]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"--since {text!r} is neither a duration (90s, 10m, 2h, 1d) nor an ISO time "
                       "(2026-01-31T09:30)") from None
    return moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp()


def ago(moment: float, now: float | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, or a date for anything older than a day."""
    seconds = max(0.0, (time.time() if now is None else now) - moment)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    """``850ms``, ``1.2s``, ``3m04s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def hops(store: Any, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The actors an envelope ran at, in order, with seconds spent there and attempts made.

    Built from the ``running`` events of the envelope (one per attempt) and its final event: the time at
    an actor runs from its first ``running`` event to the next actor's (or the final event).
    """
    if not hasattr(store, "events"):
        return []
    events = [e for e in store.events(record.get("root_id") or record["id"]) if e.envelope_id == record["id"]]
    out: list[dict[str, Any]] = []
    end = None
    for event in events:
        if event.kind == "running" and event.actor:
            if out and out[-1]["actor"] == event.actor and out[-1]["open"]:
                out[-1]["attempts"] += 1
                continue
            if out:
                out[-1]["seconds"], out[-1]["open"] = event.time - out[-1]["start"], False
            out.append({"actor": event.actor, "start": event.time, "attempts": 1, "open": True})
        elif event.kind == "created" and (event.data or {}).get("replay") and out:
            out[-1]["open"] = False  # a replay starts a new run at the same actor
        elif event.kind in ("succeeded", "failed", "canceled", "dead_lettered"):
            end = event.time
    for hop in out:
        if hop.pop("open"):
            hop["seconds"] = (end if end is not None else time.time()) - hop["start"]
        hop["seconds"] = round(max(0.0, hop.get("seconds", 0.0)), 3)
    return out


def describe(store: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The record enriched for a person: hops, last error and the failures of earlier runs (replays)."""
    out = dict(record)
    out["hops"] = hops(store, record)
    found = store.stored_envelope(record["id"]) if hasattr(store, "stored_envelope") else None
    envelope = found[1] if found else None
    earlier = ((envelope or {}).get("headers") or {}).get(PREVIOUS_FAILURES)
    if earlier:
        out["previous_failures"] = earlier
    return out


def _route_text(described: dict[str, Any]) -> str:
    parts = []
    for hop in described["hops"]:
        if hop["actor"] in env.TERMINAL_ACTORS:
            continue
        tries = f" x{hop['attempts']}" if hop["attempts"] > 1 else ""
        parts.append(f"{hop['actor']} {duration(hop['seconds'])}{tries}")
    return " -> ".join(parts) or (described.get("actor") or "-")


def line(described: dict[str, Any], now: float | None = None) -> str:
    """One human line: ``id  status  when  route-with-times  [error]``."""
    text = f"{described['id']:<36}  {described['status']:<13}  {ago(described['created_at'], now):>9}  " \
           f"{_route_text(described)}"
    error = described.get("error")
    if isinstance(error, dict) and described["status"] != "succeeded":
        where = f"{error.get('actor')}: " if error.get("actor") else ""
        message = str(error.get("message", "")).splitlines()[0][:160] if error.get("message") else ""
        text += f"  | {where}{error.get('type', 'Error')}: {message}"
    if described.get("previous_failures"):
        text += f"  (replayed; {len(described['previous_failures'])} earlier failed run(s))"
    return text


def list_envelopes(store: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Records matching the filters of ``args``, newest first, described for display."""
    if not hasattr(store, "list_records"):
        raise CliError("this status store cannot list envelopes (upgrade asya-common)")
    since = parse_since(args.since) if args.since else None
    records, _ = store.list_records(status=args.status, actor=args.actor, since=since, limit=args.limit)
    return [describe(store, r) for r in records]


def print_listing(described: list[dict[str, Any]], as_json: bool) -> None:
    """Prints the listing (one line each, or JSON lines)."""
    if as_json:
        for item in described:
            print(json.dumps(item, ensure_ascii=False))
        return
    if not described:
        print("no envelopes match (try without filters, or a longer --since)")
        return
    print(f"{'ID':<36}  {'STATUS':<13}  {'CREATED':>9}  ROUTE (time at each actor)  | LAST ERROR")
    now = time.time()
    for item in described:
        print(line(item, now))
