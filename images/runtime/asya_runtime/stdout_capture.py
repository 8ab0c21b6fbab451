"""A handler's ``print()`` (and anything else written to ``sys.stdout``) becomes a JSON log record.

Plain lines in the middle of the JSON log break every log pipeline and lose the envelope they belong
to. After the JSON logging is set up, ``sys.stdout`` is replaced by a writer that turns each complete
line into an ``info`` record of the ``stdout`` logger; the record carries the ``envelope_id`` of the call
that printed it (a context variable, also in worker threads). Partial lines are kept per thread until
their newline (or a flush), so concurrent handlers never mix their lines. Standard library only.
"""

from __future__ import annotations

import io
import logging
import sys
import threading

_log = logging.getLogger("stdout")


class LineLogger(io.TextIOBase):
    """A text stream whose lines are logged at ``level``."""

    def __init__(self, logger: logging.Logger = _log, level: int = logging.INFO, encoding: str = "utf-8"):
        super().__init__()
        self._logger, self._level, self._encoding = logger, level, encoding
        self._local = threading.local()

    @property
    def encoding(self) -> str:  # print() and libraries ask
        return self._encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        buffered = getattr(self._local, "buffer", "") + str(text)
        *lines, rest = buffered.split("\n")
        self._local.buffer = rest
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._local, "buffer", "")
        if rest:
            self._local.buffer = ""
            self._emit(rest)

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        if line.strip():
            self._logger.log(self._level, line, extra={"stream": "stdout"})


def capture_stdout() -> None:
    """Replaces ``sys.stdout`` with a :class:`LineLogger` (call after the JSON logging is configured)."""
    sys.stdout = LineLogger()
