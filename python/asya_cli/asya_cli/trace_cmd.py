"""``asya trace ID``: the hops of one request, from the status store's events.

Every sidecar writes a ``running`` event when it starts an attempt, with the attempt number, the time
the envelope waited in the actor's queue (``queue_wait``) and the hop's ``trace_id``/``span_id``; the
crew writes the final event. From those, each hop is shown with its queue wait and its handler time:
from the start of the attempt until its output was published (the next hop's start minus that hop's
queue wait), or, for the last hop of a branch, until the final event (marked ``<=``: it includes the
crew's own short wait). Fan-out children are listed under their parent. ``--json`` prints the same
as one JSON object for scripts. The trace id links the hops to the OpenTelemetry trace (Jaeger, Tempo...).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from asya_common.status import StatusStore
from asya_cli.common import CliError, add_store_arguments, open_status_store

FINAL_KINDS = ("succeeded", "failed", "canceled", "dead_lettered")


def add_parser(subparsers: Any, state_default: str = ".asya") -> None:
    """Registers ``trace`` on the ``asya`` argument parser."""
    parser = subparsers.add_parser("trace", help="the hops of one request: queue wait and handler time per hop")
    parser.add_argument("id", help="envelope id (the request's root id, or any fan-out child's)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    add_store_arguments(parser, state_default)
    parser.set_defaults(func=cmd_trace)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build(store: StatusStore, envelope_id: str) -> dict[str, Any]:
    """The request's record, final state and hops (one per attempt), in time order.

    Raises:
        CliError: No envelope with this id.
    """
    record = store.get(envelope_id)
    if record is None:
        raise CliError(f"no envelope with id {envelope_id!r}")
    root_id = record.get("root_id") or record["id"]
    root = store.get(root_id) or record
    events = sorted(store.events(root_id, limit=100000), key=lambda e: (e.time, e.seq))
    running: dict[str, list[Any]] = {}
    finals: dict[str, Any] = {}
    parents: dict[str, str] = {}
    for event in events:
        if event.kind == "running" and event.actor:
            running.setdefault(event.envelope_id, []).append(event)
        elif event.kind in FINAL_KINDS:
            finals[event.envelope_id] = event
        elif event.kind == "spawned":
            for child in (event.data or {}).get("children") or []:
                parents[str(child)] = event.envelope_id
    hops = []
    for branch_id, starts in running.items():
        for index, start in enumerate(starts):
            data = start.data if isinstance(start.data, dict) else {}
            hop = {"envelope_id": branch_id, "actor": start.actor, "attempt": data.get("attempt", 1),
                   "start": start.time, "queue_wait": _number(data.get("queue_wait")),
                   "trace_id": data.get("trace_id"), "span_id": data.get("span_id"),
                   "handler": None, "bounded": False}
            if index + 1 < len(starts):
                following = starts[index + 1]
                wait = _number((following.data or {}).get("queue_wait")) if isinstance(following.data, dict) else None
                hop["handler"] = following.time - (wait or 0.0) - start.time
            elif branch_id in finals:
                hop["handler"], hop["bounded"] = finals[branch_id].time - start.time, True
            if hop["handler"] is not None:
                hop["handler"] = round(max(0.0, hop["handler"]), 6)
            hops.append(hop)
    hops.sort(key=lambda h: h["start"])
    trace_ids = sorted({h["trace_id"] for h in hops if h["trace_id"]})
    started = min([e.time for e in events] or [root.get("created_at") or 0.0])
    ended = max([f.time for f in finals.values()] or [0.0]) or None
    branches = sorted({*running, *finals} - {root_id})
    return {"id": root_id, "status": root.get("status"), "trace_ids": trace_ids,
            "seconds": round(ended - started, 6) if ended else None, "hops": hops,
            "branches": [{"id": b, "parent_id": parents.get(b, root_id),
                          "status": (finals[b].kind if b in finals else None)} for b in branches]}


def _seconds(value: float | None, bounded: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"
    return f"<={text}" if bounded else text


def render(trace: dict[str, Any]) -> str:
    """The trace as a table for a person."""
    lines = [f"request {trace['id']}: {trace['status']}"
             + (f" in {_seconds(trace['seconds'])}" if trace["seconds"] is not None else "")
             + (f", trace {', '.join(trace['trace_ids'])}" if trace["trace_ids"] else "")]
    width = max([len(h["envelope_id"]) for h in trace["hops"]] + [8])
    lines.append(f"{'envelope':<{width}}  {'actor':<20} {'attempt':>7} {'queue wait':>11} {'handler':>11}  span")
    for hop in trace["hops"]:
        lines.append(f"{hop['envelope_id']:<{width}}  {hop['actor']:<20} {hop['attempt']:>7} "
                     f"{_seconds(hop['queue_wait']):>11} {_seconds(hop['handler'], hop['bounded']):>11}  "
                     f"{hop['span_id'] or '-'}")
    for branch in trace["branches"]:
        lines.append(f"branch {branch['id']} (from {branch['parent_id']}): {branch['status'] or 'not final'}")
    return "\n".join(lines)


def cmd_trace(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """``asya trace ID``."""
    store = open_status_store(args, environ)
    try:
        trace = build(store, args.id)
    finally:
        store.close()
    print(json.dumps(trace, ensure_ascii=False) if args.json else render(trace))
    return 0
