"""Payload-mode test handlers (plain functions, no project imports)."""

import datetime
import os
import threading
import time


class MyError(Exception):
    pass


def echo(payload):
    return {"echo": payload}


def identity(payload):
    return payload


def fan_out(payload):
    return [{"n": i} for i in range(payload["count"])]


def nothing(payload):
    return None


def fail(payload):
    if payload.get("builtin"):
        raise ValueError("bad value " + str(payload.get("n")))
    raise MyError("custom failure")


def not_serialisable(payload):
    return {"when": datetime.datetime(2024, 1, 1)}


def slow(payload):
    time.sleep(payload.get("seconds", 1.0))
    return {"slept": payload.get("seconds", 1.0), "pid": os.getpid()}


_stuck = threading.Event()


def stuck(payload):
    _stuck.wait()  # never set: only the shutdown op gets the process out
    return {}


def logs(payload):
    import logging

    logging.getLogger("user.code").info("working on %s", payload.get("what"))
    return payload


_lock = threading.Lock()
_threads = {"now": 0, "max": 0}


def threaded(payload):
    with _lock:
        _threads["now"] += 1
        _threads["max"] = max(_threads["max"], _threads["now"])
    time.sleep(payload.get("seconds", 0.5))
    with _lock:
        _threads["now"] -= 1
        return {"max_seen": _threads["max"], "thread": threading.current_thread().name}


def prints(payload):
    import logging

    print("printed", payload.get("what"))
    logging.getLogger("user.code").info("logged %s", payload.get("what"))
    return payload
