"""Skip-or-fail for tests that need a real server or tool.

On a developer's laptop a missing server skips the test with a reason; under ``CI=true`` the same
absence fails the test, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, reason: str) -> None:
    """Skips (laptop) or fails (CI) the calling test when ``available`` is false."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
