"""Hostile handlers for the hardening tests (issue 10): odd exits, odd results, slow calls."""

import asyncio
import sys
import time


class Custom(BaseException):
    """A BaseException subclass that is not a process exit."""


def raise_base(payload):
    raise Custom("not an Exception subclass")


def raise_keyboard(payload):
    raise KeyboardInterrupt("typed Ctrl-C in a handler")


def raise_refused(payload):
    raise ConnectionRefusedError("the model server refused the connection")


def stream_then_broken_pipe(payload):
    yield ("FLY", {"token": "a"})
    raise BrokenPipeError("the handler's own pipe broke")


async def araise_base(payload):
    raise Custom("async, not an Exception subclass")


def exit_two(payload):
    sys.exit(2)


async def aexit_three(payload):
    sys.exit(3)


def nan_result(payload):
    return {"score": float("nan")}


def inf_result(payload):
    return {"score": float("inf")}


def surrogate_result(payload):
    return {"text": "\ud800"}


def deep_result(payload):
    value = []
    for _ in range(1000):
        value = [value]
    return {"deep": value}


def echo(payload):
    return payload


def slow(payload):
    time.sleep(float((payload or {}).get("seconds", 1.0)))
    return payload


async def aslow(payload):
    await asyncio.sleep(float((payload or {}).get("seconds", 1.0)))
    return payload


def reroute_to_dlq(payload):
    yield ("SET", ".route.next", ["x-dlq"])
    yield payload


def exit_first_time(payload):
    """sys.exit(2) the first time a marker file is absent (then creates it), succeeds afterwards."""
    import os
    marker = payload["marker"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(2)
    return {"survived": True}


def grow(payload):
    return {"blob": "x" * int(payload["size"])}


def fail_loud(payload):
    raise ValueError("boom " + "e" * int(payload["size"]))
