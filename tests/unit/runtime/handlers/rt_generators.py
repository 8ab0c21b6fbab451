"""Generator test handlers: fan-out by yield, SET and FLY ops (sync and async)."""

import asyncio
import time


def route_then_payload(payload):
    yield ("SET", ".route.next", ["store", "notify"])
    yield {"stored": payload}


def header_between(payload):
    yield {"first": True}
    yield ("SET", ".headers.k", "v")
    yield {"second": True}


def stream_tokens(payload):
    # Emit one FLY, then block until the test signals (through a file) that it has seen it.
    yield ("FLY", {"token": "hello"})
    deadline = time.monotonic() + 10
    while not _released(payload["flag"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield {"text": "hello world", "released": _released(payload["flag"])}


async def astream_tokens(payload):
    yield ("FLY", {"token": "a"})
    deadline = time.monotonic() + 10
    while not _released(payload["flag"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    yield ("SET", ".route.next", ["after"])
    yield {"text": "a b", "released": _released(payload["flag"])}


def _released(flag_path):
    try:
        with open(flag_path) as fh:
            return fh.read() == "go"
    except FileNotFoundError:
        return False


def bad_op(payload):
    yield ("JUMP", "somewhere")


def bad_fly(payload):
    yield ("FLY", {"obj": object()})


def many(payload):
    for i in range(payload["count"]):
        yield {"i": i}
