"""The runtime's Unix socket file: owner-only (0600) from the moment it exists, in an owner-only directory.

Anyone who can connect to the socket can read every envelope the sidecar sends and forge results,
so the socket is created under a ``0177`` umask (never world-connectable, not even for a moment) and
its directory is made ``0700`` when the runtime owns it. In a pod the directory is an ``emptyDir``
mounted only into this pod's two containers (which must run as the same user; the chart sets it);
a directory the runtime does not own and that others may write to is reported in the log.
"""

from __future__ import annotations

import os
import socket
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def prepare_dir(directory: Path) -> str | None:
    """Creates ``directory`` 0700, or tightens it to 0700 when this user owns it.

    Returns:
        A warning for a directory owned by someone else that others may write to, else None.

    Raises:
        OSError: The path is a symlink or not a directory.
    """
    try:
        with _umask(0o077):
            directory.mkdir(mode=0o700, parents=True)
        return None
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise OSError(f"socket directory {directory} is a symlink or not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.getuid():
        if mode & 0o077:
            os.chmod(directory, 0o700)
        return None
    if mode & 0o002 and not mode & stat.S_ISVTX:
        return (f"socket directory {directory} belongs to uid {info.st_uid} and is writable by others "
                f"(mode {mode:o}); the socket itself is 0600")
    return None


def listen_private(path: Path, backlog: int = 100) -> tuple[socket.socket, str | None]:
    """A listening Unix socket on ``path`` whose file is 0600 from creation (a stale file is replaced).

    Returns:
        The listening socket and a warning about the directory (see :func:`prepare_dir`), or None.

    Raises:
        OSError: The directory cannot be prepared or the path cannot be bound.
    """
    warning = prepare_dir(path.parent)
    if os.path.lexists(path):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _umask(0o177):
            listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener, warning
