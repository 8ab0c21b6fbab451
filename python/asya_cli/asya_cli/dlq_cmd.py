"""``asya dlq list | show | redrive``: look into dead-letter queues and send envelopes back to their actor.

Works on any transport (the dev mesh's SQLite queue, or a broker selected by ``--transport`` /
``ASYA_*``); the operations themselves live in :mod:`asya_common.dlq`, shared with the controller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from asya_common import dlq
from asya_common import envelope as env
from asya_cli.common import CliError, transport_settings
from asya_cli.dev import read_dev_file
from asya_common.transport import TRANSPORTS, QueueNotFound, TransportError, create_transport


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_parser(subparsers: Any, state_default: str = ".asya") -> None:
    """Registers ``dlq`` and its sub-commands on the ``asya`` argument parser."""
    parser = subparsers.add_parser("dlq", help="inspect and redrive dead-letter queues")
    verbs = parser.add_subparsers(dest="dlq_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--transport", choices=TRANSPORTS, help="broker (default: the dev mesh's, or ASYA_TRANSPORT)")
        p.add_argument("--state-dir", default=state_default, help="dev mesh state dir (default .asya)")

    listing = verbs.add_parser("list", help="depth of each actor's DLQ")
    listing.add_argument("actors", nargs="*", help="actors to show (default: every DLQ the transport can list)")
    listing.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    common(listing)
    listing.set_defaults(func=cmd_list)

    show = verbs.add_parser("show", help="decoded envelopes in an actor's DLQ, with their last error")
    show.add_argument("actor")
    show.add_argument("-n", type=_positive_int, default=10, help="how many envelopes (default 10)")
    show.add_argument("--full", action="store_true", help="print whole envelopes instead of summaries")
    common(show)
    show.set_defaults(func=cmd_show)

    redrive = verbs.add_parser("redrive", help="send an actor's dead letters back to its queue, attempts reset")
    redrive.add_argument("actor")
    redrive.add_argument("--limit", type=_positive_int, help="move at most this many (default: all)")
    common(redrive)
    redrive.set_defaults(func=cmd_redrive)


def _run(args: argparse.Namespace, environ: dict[str, str], operation) -> Any:
    settings = transport_settings(args, environ)

    async def go() -> Any:
        async with create_transport(settings) as transport:
            return await operation(transport, settings.queue_prefix)

    try:
        return asyncio.run(go())
    except QueueNotFound as exc:
        raise CliError(f"{exc} (is the actor deployed on this transport?)") from None
    except (TransportError, ValueError) as exc:
        raise CliError(str(exc)) from None


async def _require_queue(transport, name: str) -> None:
    """Raises QueueNotFound for a missing queue (brokers that cannot count are given the benefit of the doubt)."""
    try:
        await transport.depth(name)
    except QueueNotFound:
        raise
    except TransportError:
        pass


def cmd_list(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Prints each DLQ's depth (ready / in flight)."""
    actors = args.actors or _dev_mesh_actors(args, environ) or None
    depths = _run(args, environ, lambda t, prefix: dlq.list_dlqs(t, prefix, actors))
    if args.json:
        print(json.dumps({a: {"ready": d.ready, "in_flight": d.in_flight, "total": d.total}
                          for a, d in depths.items()}))
        return 0
    if not depths:
        print("no dead-letter queues")
        return 0
    width = max(len("ACTOR"), *(len(a) for a in depths))
    print(f"{'ACTOR':<{width}}  {'DEPTH':>7}  {'IN-FLIGHT':>9}")
    for actor, depth in depths.items():
        print(f"{actor:<{width}}  {depth.ready:>7}  {depth.in_flight:>9}")
    return 0


def _dev_mesh_actors(args: argparse.Namespace, environ: dict[str, str]) -> list[str]:
    """The actors of the dev mesh of ``--state-dir`` when it runs on the chosen broker (brokers cannot list)."""
    recorded = read_dev_file(Path(args.state_dir))
    if not recorded:
        return []
    kind = recorded.get("transport", {}).get("ASYA_TRANSPORT", "sqlite")
    return list(recorded.get("actors", [])) if kind == transport_settings(args, environ).kind else []


def cmd_show(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Prints up to ``-n`` dead letters of one actor as JSON lines; they stay in the DLQ."""

    async def show(transport, prefix: str):
        await _require_queue(transport, env.dlq_name(args.actor, prefix))
        return await dlq.peek(transport, env.dlq_name(args.actor, prefix), limit=args.n)

    entries = _run(args, environ, show)
    if not entries:
        print(f"the DLQ of {args.actor} is empty: no dead letters")
    for entry in entries:
        if args.full and entry.envelope is not None:
            print(json.dumps(entry.envelope, ensure_ascii=False))
        else:
            print(json.dumps(entry.summary(), ensure_ascii=False))
    return 0


def cmd_redrive(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Moves dead letters back to the actor's queue; prints how many moved and which stayed."""

    async def move(transport, prefix: str):
        for name in (env.dlq_name(args.actor, prefix), env.queue_name(args.actor, prefix)):
            await _require_queue(transport, name)
        return await dlq.redrive(transport, env.dlq_name(args.actor, prefix), env.queue_name(args.actor, prefix),
                                 limit=args.limit)

    result = _run(args, environ, move)
    print(f"redrove {result.moved} envelope(s) from the DLQ of {args.actor} back to its queue")
    if result.skipped:
        print(f"left {len(result.skipped)} undecodable message(s) in the DLQ (see `asya dlq show {args.actor}`)")
    return 0
