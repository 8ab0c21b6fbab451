"""Tracebacks show the source the process runs, never a newer version of the file on disk.

Python reads source lines for a traceback lazily, from disk, when it is formatted. After a user edits a
handler file (``asya dev --reload`` restarts the runtime only a moment later, and a pod never), a frame of
the old code would be printed with the new file's lines: a wrong line under the right line number. So
once the handler is imported, the text of every module file loaded from outside the Python installation
is pinned in :mod:`linecache` as it was at import time. Entries without a modification time are never
invalidated by ``linecache.checkcache`` (which ``traceback`` calls). Standard library only.
"""

from __future__ import annotations

import linecache
import os
import sys

# the standard library (where ``os`` lives) and the interpreter's prefixes: never the user's code
_INSTALL_DIRS = tuple({os.path.realpath(p) for p in (os.path.dirname(os.__file__), sys.prefix, sys.base_prefix,
                                                       sys.exec_prefix)} - {"/"})


def pin_loaded_sources(limit_bytes: int = 2 * 2**20) -> int:
    """Pins the source of every loaded user module (not the stdlib); returns how many files were pinned.

    Args:
        limit_bytes: Files larger than this are left to the lazy cache (generated code, data modules).
    """
    pinned = 0
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename or not filename.endswith(".py"):
            continue
        real = os.path.realpath(filename)
        if real.startswith(_INSTALL_DIRS) or "site-packages" in real or "dist-packages" in real:
            continue
        try:
            if os.path.getsize(filename) > limit_bytes:
                continue
            with open(filename, encoding="utf-8") as source:
                lines = source.readlines()
        except (OSError, UnicodeDecodeError):
            continue
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
        pinned += 1
    return pinned
