"""Entry point of the ``asya`` command: argument parsing and the ``dev``, ``send``, ``status`` and ``replay`` verbs.

The environment is read once here (``ASYA_*`` through the typed settings) and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from asya_common import envelope as env
from asya_common.settings import SettingsError
from asya_common.status import StatusStore, is_settled
from asya_common.transport import TRANSPORTS, TransportError, create_transport
from asya_cli import devwatch, dlq_cmd, names, payload_input, replay_cmd, status_cmd
from asya_cli.meshstate import require_running_mesh
from asya_cli import stream_cmd
from asya_cli import paused_cmd
from asya_cli import trace_cmd
from asya_cli.common import CliError, open_status_store, transport_settings
from asya_cli.dev import DevMesh
from asya_cli.flow import cli as flow_cli
from asya_cli.values import ValuesError, load_actor


def cmd_dev(args: argparse.Namespace, environ: dict[str, str]) -> int:
    state_dir = Path(args.state_dir).resolve()
    if args.values[0] == "restart":  # `asya dev restart ACTOR...`: ask the running mesh (devwatch.py)
        return devwatch.request_restart(state_dir, args.values[1:])
    layers = [Path(p) for p in args.base or []]
    flow_files = [v for v in args.values if v.endswith(".py")]  # Flow DSL files (docs/flows.md)
    try:
        actors = [load_actor(path, layers) for path in args.values if not path.endswith(".py")]
        if flow_files:
            actors += [load_actor(path, layers) for path in
                       flow_cli.prepare_dev_flows(flow_files, [a.name for a in actors], state_dir)]
    except ValuesError as exc:
        raise CliError(str(exc)) from None
    names = [a.name for a in actors]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise CliError(f"actor names must be unique; repeated: {', '.join(sorted(duplicates))}")
    (state_dir).mkdir(parents=True, exist_ok=True)
    settings = transport_settings(args, environ)
    count = f"{len(actors)} actor{'' if len(actors) == 1 else 's'}"
    print(f"asya dev: {count} + crew on {settings.kind}; state in {state_dir}; Ctrl-C stops"
          + ("; --reload: runtimes restart when their .py files change" if args.reload else ""))
    mesh = DevMesh(actors, settings, state_dir, environ, reload=args.reload)
    return asyncio.run(mesh.run())


def _parse_headers(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--header needs key=value, got {pair!r}")
        headers[key] = value
    return headers


def cmd_send(args: argparse.Namespace, environ: dict[str, str]) -> int:
    if args.stream:  # through the gateway: FLY chunks as they arrive, then the final record
        return stream_cmd.send(args, environ)
    if (args.payload is None) == (args.batch is None):
        raise CliError("give exactly one of --payload (JSON, @file.json or - for stdin) and --batch FILE.jsonl")
    route = flow_cli.route_of(args)  # --route, or the entry route of a compiled --flow
    for actor in route:  # say what is allowed and suggest the fix (names.py)
        if actor not in env.TERMINAL_ACTORS and names.problem(actor):
            raise CliError(f"--route: {names.problem(actor)}")
    require_running_mesh(Path(args.state_dir), transport_settings(args, environ).kind)
    if args.batch is not None:
        return payload_input.send_batch(args, environ, route, _parse_headers(args.header or []))
    payload = payload_input.read_payload(args.payload)
    try:
        envelope = env.make_envelope(route, payload, headers=_parse_headers(args.header or []), envelope_id=args.id)
    except env.RouteError as exc:
        raise CliError(str(exc)) from None
    settings = transport_settings(args, environ)

    async def publish() -> None:
        async with create_transport(settings) as transport:
            await transport.send(env.queue_name(route[0], settings.queue_prefix), env.dumps(envelope))

    try:
        asyncio.run(publish())
    except TransportError as exc:
        raise CliError(f"cannot publish to actor {route[0]!r}: {exc} (is `asya dev` running with this actor?)")
    store = open_status_store(args, environ, must_exist=False)
    store.mark_pending(envelope["id"], route[0])  # never overwrites a record the mesh already finished
    if not args.wait:
        print(envelope["id"])
        return 0
    record = _wait(store, envelope["id"], args.timeout)
    print(json.dumps(record, ensure_ascii=False))
    if not is_settled(record):
        return 3
    return 0 if record["status"] == "succeeded" else 1


def _wait(store: StatusStore, envelope_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record = store.tree(envelope_id) or {"id": envelope_id, "status": "pending"}
        if is_settled(record) or time.monotonic() >= deadline:
            return record
        time.sleep(0.1)


def cmd_status(args: argparse.Namespace, environ: dict[str, str]) -> int:
    if args.id is None:  # the listing: recent envelopes, filtered
        status_cmd.print_listing(status_cmd.list_envelopes(open_status_store(args, environ), args), args.json)
        return 0
    store = open_status_store(args, environ)
    record = store.tree(args.id)
    if record is None:
        raise CliError(f"no envelope with id {args.id!r}")
    print(json.dumps(status_cmd.describe(store, record), ensure_ascii=False))  # + hops, earlier runs' errors
    return 0


def cmd_replay(args: argparse.Namespace, environ: dict[str, str]) -> int:
    return replay_cmd.run(open_status_store(args, environ), args, environ)


def build_parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asya", description="Asya actor mesh: local dev mesh and tools")
    state_default = environ.get("ASYA_STATE_DIR", ".asya")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run actors from values files as local processes")
    dev.add_argument("values", nargs="+", help="actor values files (one actor each)")
    dev.add_argument("--base", action="append", help="shared values layer merged under every actor file")
    dev.add_argument("--transport", choices=TRANSPORTS, help="broker (default: sqlite, or ASYA_TRANSPORT)")
    dev.add_argument("--state-dir", default=state_default, help="queues, status store, logs (default .asya)")
    dev.add_argument("--reload", action="store_true",
                     help="restart an actor's runtime when a .py file in its folder changes "
                          "(`asya dev restart ACTOR` restarts one by hand)")
    dev.set_defaults(func=cmd_dev)

    send = sub.add_parser("send", help="publish one envelope to the running dev mesh")
    send.add_argument("--route", help="comma-separated actors, e.g. validate,classify,store")
    send.add_argument("--flow", help="instead of --route: a flow function run by `asya dev flow.py ...`")
    send.add_argument("--payload", help="JSON payload, @file.json, or - to read it from stdin")
    send.add_argument("--batch", metavar="FILE.jsonl", help="one payload per line (- for stdin): one envelope each")
    send.add_argument("--header", action="append", help="header key=value (repeatable)")
    send.add_argument("--stream", action="store_true",
                      help="submit through the gateway (dev mesh's, or ASYA_GATEWAY_URL) and print FLY chunks live")
    send.add_argument("--tool", help="with --stream: a gateway tool instead of --route (--payload = its arguments)")
    send.add_argument("--id", help="envelope id (default: a new uuid)")
    send.add_argument("--wait", action="store_true", help="wait for the final record and print it")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait with --wait")
    send.add_argument("--transport", choices=TRANSPORTS, help="override the dev mesh's broker")
    send.add_argument("--state-dir", default=state_default)
    send.set_defaults(func=cmd_send)

    status = sub.add_parser("status", help="an envelope's record as JSON; without an id, recent envelopes")
    status.add_argument("id", nargs="?", help="envelope id (omit to list recent envelopes)")
    status.add_argument("--status", dest="status", help="list: only this status (failed, succeeded, running...)")
    status.add_argument("--actor", help="list: only envelopes at (or last at) this actor")
    status.add_argument("--since", help="list: created within this period (10m, 2h, 1d) or after an ISO time")
    status.add_argument("--limit", type=int, default=20, help="list: at most this many (default 20)")
    status.add_argument("--json", action="store_true", help="list: JSON lines instead of the table")
    status.add_argument("--state-dir", default=state_default)
    status.set_defaults(func=cmd_status)

    replay = sub.add_parser("replay", help="send a failed envelope (or --all that match) back to the failed actor")
    replay.add_argument("id", nargs="?", help="envelope id (or --all with filters)")
    replay_cmd.add_arguments(replay)
    replay.add_argument("--state-dir", default=state_default)
    replay.set_defaults(func=cmd_replay)

    dlq_cmd.add_parser(sub, state_default)
    paused_cmd.add_parser(sub, state_default)
    trace_cmd.add_parser(sub, state_default)
    flow_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``asya`` command; returns its exit code."""
    environ = dict(os.environ)
    args = build_parser(environ).parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # client libraries' retry logs are not our one line
    try:
        return args.func(args, environ)
    except (CliError, SettingsError) as exc:
        print(f"asya {args.command}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # a corrupt or locked queue/status database: one line, no traceback
        print(f"asya {args.command}: a database in state dir {getattr(args, 'state_dir', '?')} cannot be used: "
              f"{exc} (locked by another process, or not an asya database)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
