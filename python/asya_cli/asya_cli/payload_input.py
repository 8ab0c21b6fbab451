"""Payloads for ``asya send`` from the command line, a file or stdin, and ``--batch`` (one payload per line).

``--payload '{"x": 1}'`` is inline JSON, ``--payload @scan.json`` reads a file, ``--payload -`` reads
stdin; ``--batch inputs.jsonl`` sends one envelope per non-empty line (``--batch -`` reads stdin) and
prints each id, and with ``--wait`` waits for every one of them. A payload that is not JSON is refused
before anything is published, with the file, line and column of the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from asya_common import envelope as env
from asya_common import strictjson
from asya_common.status import is_settled
from asya_common.transport import TransportError, create_transport
from asya_cli.common import CliError, open_status_store, transport_settings


def _parse(text: str, where: str) -> Any:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        pass  # named below
    try:  # strict: no NaN/Infinity, no invalid Unicode (a lone surrogate), no absurd nesting
        return strictjson.loads(text, what=where)
    except strictjson.NotStrictJSON as exc:
        raise CliError(exc.reason) from None


def _read_source(source: str, stdin: TextIO, what: str) -> tuple[str, str]:
    """``(text, description)`` of ``-`` (stdin) or a file path."""
    if source == "-":
        return stdin.read(), f"{what} from stdin"
    try:
        return Path(source).read_text(encoding="utf-8"), f"{what} file {source}"
    except OSError as exc:
        raise CliError(f"cannot read {what} file {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} file {source} is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_payload(argument: str, stdin: TextIO = sys.stdin) -> Any:
    """The payload of ``--payload``: inline JSON, ``@file.json`` or ``-`` (stdin).

    Raises:
        CliError: Unreadable file or not JSON (the message says where).
    """
    if argument == "-" or argument.startswith("@"):
        text, where = _read_source(argument if argument == "-" else argument[1:], stdin, "--payload")
        return _parse(text, where)
    return _parse(argument, "--payload")


def read_batch(source: str, stdin: TextIO = sys.stdin) -> list[Any]:
    """Payloads of a JSON Lines file (one JSON value per non-empty line), or of stdin for ``-``.

    Raises:
        CliError: Unreadable, empty, or a line that is not JSON (named by its number).
    """
    text, where = _read_source(source, stdin, "--batch")
    payloads = [_parse(line, f"line {number} of {where}")
                for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not payloads:
        raise CliError(f"{where} holds no payloads (one JSON value per line)")
    return payloads


def send_batch(args: argparse.Namespace, environ: dict[str, str], route: list[str], headers: dict[str, str],
               out: TextIO = sys.stdout) -> int:
    """Publishes one envelope per payload of ``--batch``; prints the ids, or with ``--wait`` every final record.

    Returns:
        0 when all succeeded (or without ``--wait``), 1 when any failed, 3 when any is not final in time.
    """
    payloads = read_batch(args.batch)
    try:
        envelopes = [env.make_envelope(route, payload, headers=dict(headers)) for payload in payloads]
    except env.RouteError as exc:
        raise CliError(str(exc)) from None
    settings = transport_settings(args, environ)
    store = open_status_store(args, environ, must_exist=False)
    for envelope in envelopes:  # before publishing: the mesh's own record must never be overwritten by ours
        store.mark_pending(envelope["id"], route[0])

    async def publish() -> None:
        async with create_transport(settings) as transport:
            bodies = [env.dumps(e) for e in envelopes]
            for start in range(0, len(bodies), 100):
                await transport.send_many(env.queue_name(route[0], settings.queue_prefix), bodies[start:start + 100])

    try:
        asyncio.run(publish())
    except TransportError as exc:
        raise CliError(f"cannot publish to actor {route[0]!r}: {exc} (is `asya dev` running with this actor?)")
    if not args.wait:
        for envelope in envelopes:
            print(envelope["id"], file=out)
        return 0
    deadline = time.monotonic() + args.timeout
    code = 0
    for envelope in envelopes:
        while True:
            record = store.tree(envelope["id"]) or {"id": envelope["id"], "status": "pending"}
            if is_settled(record) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        print(json.dumps(record, ensure_ascii=False), file=out)
        if not is_settled(record):
            code = 3
        elif record["status"] != "succeeded" and code == 0:
            code = 1
    return code
