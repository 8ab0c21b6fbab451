"""``asya paused list|show|resume``: the envelopes a handler paused for a person, and resuming them.

A handler that yields ``("PAUSE", {...})`` is parked in the status store by its sidecar. ``list``
shows what is waiting, ``show ID`` prints one pause (prompt, JSON Schema, payload), and
``resume ID --input JSON`` validates the input against the schema, merges it at the pause's
``into`` path and publishes the envelope to its next actor: exactly once, even when two people
resume at the same time (the second gets a clear "already resumed" error).

The store is ``--store``, else ``ASYA_STATUS_DB``, else the dev mesh's ``<state-dir>/status.sqlite3``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from asya_common.status import PauseConflict, PauseInputInvalid, PauseNotFound
from asya_common.status.pause import resume_paused
from asya_common.transport import TRANSPORTS, TransportError, create_transport
from asya_cli.common import CliError, add_store_arguments, open_status_store, transport_settings


def add_parser(subparsers: Any, state_default: str = ".asya") -> None:
    """Registers ``paused`` and its sub-commands on the ``asya`` argument parser."""
    parser = subparsers.add_parser("paused", help="envelopes paused for a person: list, show, resume")
    verbs = parser.add_subparsers(dest="paused_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        add_store_arguments(p, state_default)

    listing = verbs.add_parser("list", help="paused envelopes waiting for input, oldest first")
    listing.add_argument("--all", action="store_true", help="also resumed, expired and canceled pauses")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    common(listing)
    listing.set_defaults(func=cmd_list)

    show = verbs.add_parser("show", help="one pause: prompt, schema, payload, deadline")
    show.add_argument("id")
    common(show)
    show.set_defaults(func=cmd_show)

    resume = verbs.add_parser("resume", help="continue a paused envelope with a person's input")
    resume.add_argument("id")
    resume.add_argument("--input", required=True, help="the input as JSON, @file.json, or - for stdin")
    resume.add_argument("--transport", choices=TRANSPORTS, help="broker (default: the dev mesh's, or ASYA_TRANSPORT)")
    common(resume)
    resume.set_defaults(func=cmd_resume)


def summary(pause: dict[str, Any], now: float) -> dict[str, Any]:
    """The fields ``list`` shows for one pause."""
    spec = pause["spec"]
    return {"id": pause["id"], "status": pause["status"], "actor": pause["actor"], "next": pause["next_actor"],
            "age_seconds": round(now - pause["created_at"], 1),
            "expires_in_seconds": round(pause["expires_at"] - now, 1) if pause["expires_at"] else None,
            "on_timeout": spec.get("on_timeout"), "prompt": spec.get("prompt", "")}


def cmd_list(args: argparse.Namespace, environ: dict[str, str]) -> int:
    store = open_status_store(args, environ)
    now = time.time()
    rows = [summary(p, now) for p in store.list_pauses(status=None if args.all else "paused", limit=1000)]
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if not rows:
        print("no paused envelopes")
        return 0
    print(f"{'ID':34} {'STATUS':8} {'PAUSED AT':14} {'NEXT':14} {'AGE':>8} {'EXPIRES IN':>10}  PROMPT")
    for r in rows:
        expires = "never" if r["expires_in_seconds"] is None else f"{max(0, r['expires_in_seconds']):.0f}s"
        print(f"{r['id'][:34]:34} {r['status']:8} {str(r['actor'])[:14]:14} {r['next'][:14]:14} "
              f"{r['age_seconds']:>7.0f}s {expires:>10}  {r['prompt'][:60]}")
    return 0


def cmd_show(args: argparse.Namespace, environ: dict[str, str]) -> int:
    pause = open_status_store(args, environ).get_pause(args.id)
    if pause is None:
        raise CliError(f"no paused envelope with id {args.id!r} (see `asya paused list`)")
    spec = pause["spec"]
    print(json.dumps({**summary(pause, time.time()), "schema": spec.get("schema"), "into": spec.get("into"),
                      "timeout": spec.get("timeout"), "defaults": spec.get("defaults"),
                      "payload": pause["envelope"].get("payload"), "route": pause["envelope"].get("route")},
                     ensure_ascii=False, indent=2))
    return 0


def read_input(text: str) -> Any:
    """Parses ``--input``: JSON text, ``@file.json`` or ``-`` (stdin)."""
    source = "--input"
    if text == "-":
        text, source = sys.stdin.read(), "stdin"
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise CliError(f"cannot read --input file {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def cmd_resume(args: argparse.Namespace, environ: dict[str, str]) -> int:
    value = read_input(args.input)
    store = open_status_store(args, environ)
    settings = transport_settings(args, environ)

    async def go() -> dict[str, Any]:
        async with create_transport(settings) as transport:
            return await resume_paused(store, transport, args.id, value, queue_prefix=settings.queue_prefix)

    try:
        envelope = asyncio.run(go())
    except PauseNotFound:
        raise CliError(f"no paused envelope with id {args.id!r} (see `asya paused list`)") from None
    except PauseConflict as exc:
        raise CliError(f"cannot resume: {exc}") from None
    except PauseInputInvalid as exc:
        raise CliError(f"input rejected, {args.id} is still paused: " + "; ".join(exc.errors)) from None
    except TransportError as exc:
        raise CliError(f"cannot publish the resumed envelope ({exc}); {args.id} is still paused") from None
    print(json.dumps({"id": envelope["id"], "resumed_to": envelope["route"]["curr"],
                      "payload": envelope.get("payload")}, ensure_ascii=False))
    return 0
