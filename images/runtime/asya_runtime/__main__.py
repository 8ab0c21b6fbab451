"""Entry point: ``python -m asya_runtime`` / ``asya-runtime``.

Exit codes: 0 after SIGTERM, 2 for a configuration error (settings, handler name, arguments),
3 when the user's code fails while importing or initialising, 75 after the sidecar's ``shutdown``
op (restart me). The working directory is importable (as with ``python -m``). Start-up failures print one line on stderr naming the problem; the traceback
follows only when ASYA_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import os
import sys
import traceback

from asya_common.settings import SettingsError

from asya_runtime import jsonlog, sourcecache, stdout_capture
from asya_runtime.config import load_runtime_settings
from asya_runtime.loader import HandlerConfigError, HandlerInitError, load_handler
from asya_runtime.server import RuntimeServer

EXIT_CONFIG = 2
EXIT_HANDLER_INIT = 3


def _fail(code: int, message: str, exc: BaseException, debug: bool) -> int:
    print(f"asya-runtime: {message}", file=sys.stderr, flush=True)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    return code


def main() -> int:
    """Loads settings and the handler, then serves until stopped; returns the exit code."""
    try:
        settings = load_runtime_settings()
    except SettingsError as exc:
        return _fail(EXIT_CONFIG, str(exc), exc, debug=False)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not; handler modules often live in cwd
    debug = settings.log_level.strip().upper() == "DEBUG"
    jsonlog.configure(settings.log_level, settings.actor_name, settings.handler)
    stdout_capture.capture_stdout()  # print() becomes a JSON record with the envelope id
    try:
        handler = load_handler(settings.handler, settings.handler_args)
    except HandlerConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc), exc, debug)
    except HandlerInitError as exc:
        return _fail(EXIT_HANDLER_INIT, str(exc), exc.__cause__ or exc, debug)
    sourcecache.pin_loaded_sources()  # tracebacks show the code this process runs, not a later edit
    try:
        return RuntimeServer(settings, handler).serve()
    except OSError as exc:  # socket path not writable, address in use...
        return _fail(EXIT_CONFIG, f"cannot serve on ASYA_SOCKET_PATH={settings.socket_path!r} ({exc})", exc, debug)


if __name__ == "__main__":
    sys.exit(main())
