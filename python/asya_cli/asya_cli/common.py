"""What every ``asya`` verb shares: the user-error type and the choice of broker.

Kept apart from ``main`` so verb modules (``dlq_cmd``) import it without importing the entry point.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asya_common.settings import load_settings
from asya_common.transport import TransportSettings
from asya_cli.dev import read_dev_file
from asya_cli.local_access import restore


class CliError(Exception):
    """A user error: printed as one line naming the problem, exit code 2."""


def transport_settings(args: argparse.Namespace, environ: dict[str, str]) -> TransportSettings:
    """Settings for the broker: ``--transport``, else the running dev mesh's (``dev.json``), else ASYA_* env.

    The embedded queue database defaults to the state dir, so every verb finds the dev mesh's queues.
    """
    state_dir = Path(args.state_dir)
    source = dict(environ)
    recorded = read_dev_file(state_dir)
    if recorded and not getattr(args, "transport", None):
        try:
            source.update(restore(recorded, environ))
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
    if getattr(args, "transport", None):
        source["ASYA_TRANSPORT"] = args.transport
    in_state_dir = source.get("ASYA_SQLITE_PATH", TransportSettings.sqlite_path) == TransportSettings.sqlite_path
    if in_state_dir:
        source["ASYA_SQLITE_PATH"] = str(state_dir / "queues.sqlite3")
    settings = load_settings(TransportSettings, source)
    # Never a new, empty mesh in a mistyped state dir; an explicit ASYA_SQLITE_PATH names its own database.
    if settings.kind == "sqlite" and in_state_dir and not state_dir.is_dir():
        raise CliError(f"state dir {state_dir} does not exist (start `asya dev` with it, or pass the "
                       "--state-dir of a running mesh)")
    return settings
