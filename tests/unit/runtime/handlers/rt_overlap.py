"""A sync handler that reports how many of its calls ever ran at once."""

import threading
import time

_lock = threading.Lock()
_active = 0
_most = 0


def overlap(payload):
    global _active, _most
    with _lock:
        _active += 1
        _most = max(_most, _active)
    time.sleep(payload.get("sleep", 0))
    with _lock:
        most = _most
        _active -= 1
    return {"most_at_once": most, "i": payload.get("i")}
