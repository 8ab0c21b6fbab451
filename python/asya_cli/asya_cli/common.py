"""What every ``asya`` verb shares: the user-error type and the choice of broker.

Kept apart from ``main`` so verb modules (``dlq_cmd``) import it without importing the entry point.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asya_common.settings import load_settings
from asya_common.status import StatusStore, open_store
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


def add_store_arguments(parser: argparse.ArgumentParser, state_default: str) -> None:
    """``--store`` and ``--state-dir``: where :func:`open_status_store` looks."""
    parser.add_argument("--store", help="status store: SQLite path or postgresql:// URL (default: ASYA_STATUS_DB, "
                                        "else <state-dir>/status.sqlite3)")
    parser.add_argument("--state-dir", default=state_default, help="dev mesh state dir (default .asya)")


def open_status_store(args: argparse.Namespace, environ: dict[str, str], *, must_exist: bool = True) -> StatusStore:
    """The store named by ``--store``, ``ASYA_STATUS_DB`` or the dev mesh's state dir (one rule for every verb).

    Args:
        args: Parsed arguments (``state_dir``, and ``store`` where the verb has it).
        environ: The environment.
        must_exist: Refuse a state dir without a status store (reading verbs); ``send`` may create it.

    Raises:
        CliError: No store there, or it cannot be opened (one line).
    """
    location = getattr(args, "store", None) or environ.get("ASYA_STATUS_DB")
    if not location:
        path = Path(args.state_dir) / "status.sqlite3"
        if must_exist and not path.exists():
            raise CliError(f"no status store at {path} (run `asya dev` first, pass --state-dir or --store)")
        location = str(path)
    try:
        return open_store(location)
    except (ValueError, RuntimeError) as exc:
        raise CliError(f"cannot open the status store: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. psycopg.OperationalError: name it, one line
        raise CliError(f"cannot open the status store {location.split('@')[-1]!r}: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
