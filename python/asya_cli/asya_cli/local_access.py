"""Who else on this machine can reach an ``asya dev`` mesh: nobody but its owner.

On a shared machine (a CI runner, a jump host) another local user must not read envelopes from the
SQLite queue and status store, forge results through a runtime socket, or learn broker credentials.
So ``asya dev`` runs under a ``0077`` umask (every file it and its children create is owner-only:
databases and their WAL files, logs, ``dev.json``, ``pids.json``), tightens a state dir left wider
by an earlier run, puts sockets whose path is too long for the state dir in a fresh private
directory (never one that already exists), and writes no credential into ``dev.json``: a URL with
a password is stored redacted, and verbs that read ``dev.json`` take it from their own environment.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def lock_down(state_dir: Path) -> None:
    """Owner-only from now on: umask 0077 for this process and its children, state dir 0700, files 0600."""
    os.umask(0o077)
    state_dir.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(state_dir):
        os.chmod(root, 0o700)
        for name in files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
                os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)


def private_socket_dir() -> Path:
    """A fresh directory for sockets (0700, created now, unique): never a pre-existing, guessable path."""
    return Path(tempfile.mkdtemp(prefix="asya-sock-"))


def _has_password(value: str) -> bool:
    try:
        return bool(urlsplit(value).password)
    except ValueError:
        return False


def redact(transport_env: dict[str, str]) -> dict[str, Any]:
    """What ``dev.json`` records of the transport: values with a URL password redacted and listed.

    Returns:
        ``{"transport": {...}, "from_env": [names whose value a verb must take from its environment]}``.
    """
    stored, from_env = {}, []
    for key, value in transport_env.items():
        if isinstance(value, str) and _has_password(value):
            parts = urlsplit(value)
            netloc = f"{parts.username}:{REDACTED}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            stored[key] = urlunsplit(parts._replace(netloc=netloc))
            from_env.append(key)
        else:
            stored[key] = value
    return {"transport": stored, "from_env": from_env}


def restore(recorded: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """The recorded transport env with redacted values taken from ``environ``.

    Raises:
        KeyError: A redacted variable is not set in ``environ``; the message names it.
    """
    values = dict(recorded.get("transport") or {})
    kind = str(values.get("ASYA_TRANSPORT", "sqlite")).upper()
    for key in recorded.get("from_env") or []:
        if environ.get(key):
            values[key] = environ[key]
        elif key.startswith(f"ASYA_{kind}_"):  # the mesh's own broker needs it
            raise KeyError(f"the dev mesh's {key} holds credentials, which dev.json does not store; "
                           f"set {key} in this shell too")
        else:
            values.pop(key)  # another broker's setting: not needed here
    return values
