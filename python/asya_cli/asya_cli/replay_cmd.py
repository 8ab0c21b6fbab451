"""``asya replay``: one failed envelope (``ID``), or all that match (``--all --status failed --actor X``).

Each replayed envelope goes back to the actor that failed it with fresh attempts (see
:mod:`asya_cli.replay`); the errors of its earlier runs stay in the record (``asya status``).
``--wait`` waits until every replayed envelope is final again and prints the records; the exit code
is 0 when all succeeded, 1 when any failed again, 3 when any is still running at ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from asya_common import envelope as env
from asya_common.status_store import is_settled
from asya_common.transport import TransportError, create_transport
from asya_cli.common import CliError, transport_settings
from asya_cli.replay import ReplayError, replay_envelope
from asya_cli.status_cmd import parse_since


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bulk and wait options of ``asya replay`` (the ``id`` argument is the entry point's)."""
    parser.add_argument("--all", action="store_true", help="replay every envelope matching the filters")
    parser.add_argument("--status", default="failed", help="with --all: records of this status (default failed)")
    parser.add_argument("--actor", help="with --all: only envelopes that failed at this actor")
    parser.add_argument("--since", help="with --all: created within this period (10m, 2h, 1d) or after an ISO time")
    parser.add_argument("--limit", type=int, default=1000, help="with --all: at most this many (default 1000)")
    parser.add_argument("--wait", action="store_true", help="wait until the replayed envelopes are final again")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait with --wait")


def _targets(store: Any, args: argparse.Namespace) -> list[str]:
    if args.all == bool(args.id):
        raise CliError("give an envelope ID, or --all with filters (--status failed --actor X)")
    if args.id:
        return [args.id]
    if args.status != "failed":
        raise CliError(f"--status {args.status!r}: only failed envelopes can be replayed")
    since = parse_since(args.since) if args.since else None
    records, _ = store.list_records(status="failed", actor=args.actor, since=since, limit=args.limit)
    return [r["id"] for r in records]


def run(store: Any, args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Replays the targets of ``args``; returns the exit code."""
    ids = _targets(store, args)
    planned = []
    for envelope_id in ids:
        try:
            planned.append((envelope_id, *replay_envelope(store, envelope_id)))
        except ReplayError as exc:
            if not args.all:
                raise CliError(str(exc)) from None
            print(f"skipped {envelope_id}: {exc}")
    if args.all and not planned:
        print("nothing to replay: no failed envelope matches")
        return 0
    settings = transport_settings(args, environ)

    async def publish() -> None:
        async with create_transport(settings) as transport:
            for envelope_id, actor, envelope in planned:
                await transport.send(env.queue_name(actor, settings.queue_prefix), env.dumps(envelope))
                store.reset(envelope_id)  # only once its replay is durably published

    try:
        asyncio.run(publish())
    except (TransportError, OSError) as exc:
        raise CliError(f"cannot publish the replay ({type(exc).__name__}: {str(exc)[:300]}); "
                       "the record is unchanged") from None
    for envelope_id, actor, _ in planned:
        print(f"{envelope_id} replayed to {actor}")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    code = 0
    for envelope_id, _, _ in planned:
        while True:
            record = store.tree(envelope_id) or {"id": envelope_id, "status": "pending"}
            if is_settled(record) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        print(json.dumps(record, ensure_ascii=False))
        if not is_settled(record):
            code = 3
        elif record["status"] != "succeeded" and code == 0:
            code = 1
    return code
