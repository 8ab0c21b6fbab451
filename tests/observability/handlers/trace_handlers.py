"""Handlers of the tracing tests; like a user's, they import nothing from Asya and log with stdlib logging."""

import logging
import threading

log = logging.getLogger("trace_handlers")
_seen = set()
_lock = threading.Lock()


class TransientError(Exception):
    """What a flaky downstream raises."""


def split(payload):
    """Fans out into ``payload['n']`` items (item 0 is told to fail once)."""
    log.info("splitting into %d items", payload["n"])
    return [{"item": i, "fail_once": i == 0, "run": payload.get("run", "")} for i in range(payload["n"])]


def flaky(payload):
    """Fails the first attempt of an item marked ``fail_once`` (per runtime process)."""
    key = (payload.get("run"), payload["item"])
    with _lock:
        first = key not in _seen
        _seen.add(key)
    if payload.get("fail_once") and first:
        raise TransientError(f"transient failure of item {payload['item']}")
    log.info("item %s ok", payload["item"])
    return payload


def finish(payload):
    return {**payload, "done": True}


def relay(payload):
    return payload


def streamer(payload):
    """Streams two partial results, then returns the payload."""
    yield ("FLY", {"token": "hel"})
    yield ("FLY", {"token": "lo"})
    yield payload


def slow(payload):
    import time

    time.sleep(payload.get("sleep", 10))
    return payload
