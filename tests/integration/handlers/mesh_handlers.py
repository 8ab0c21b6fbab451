"""Plain handler functions used by the mesh tests; like a user's, they import nothing from Asya."""

import asyncio
import json
import os
import threading
import time

_attempts = {}
_lock = threading.Lock()
_active = 0
_max_active = 0


def double(payload):
    return {**payload, "x": payload["x"] * 2}


def add_one(payload):
    return {**payload, "x": payload["x"] + 1}


def fan_out(payload):
    return [{"item": i} for i in range(payload["n"])]


def nothing(payload):
    return None


def echo(payload):
    return payload


def to_store(payload):
    yield ("SET", ".route.next", ["store"])
    yield ("SET", ".headers.x-routed", "by-generator")
    yield {**payload, "routed": True}


def mark_store(payload):
    return {**payload, "stored": True}


def reroute_envelope(envelope):
    envelope["route"]["next"] = ["store"]
    envelope["payload"] = {**envelope["payload"], "rerouted": True}
    return envelope


def rewrite_prev(envelope):
    envelope["route"]["prev"] = ["someone-else"]
    return envelope


def flaky(payload):
    """Fails payload['fail_times'] times per key, recording each attempt's time in payload['log']."""
    key = payload["key"]
    with open(payload["log"], "a") as log:
        log.write(json.dumps({"key": key, "at": time.time()}) + "\n")
    with _lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        attempt = _attempts[key]
    if attempt <= payload["fail_times"]:
        raise RuntimeError(f"transient failure {attempt} for {key}")
    return {**payload, "attempts": attempt}


def sleepy(payload):
    time.sleep(payload.get("sleep", 0))
    return {**payload, "pid": os.getpid()}


async def async_sleepy(payload):
    global _active, _max_active
    with _lock:
        _active += 1
        _max_active = max(_max_active, _active)
    await asyncio.sleep(payload["sleep"])
    with _lock:
        seen = _max_active
        _active -= 1
    return {"max_concurrent_seen": seen}


_started: list = []


def sync_sleepy(payload):
    """A sync handler that reports how many of its calls overlapped and in which order calls started."""
    global _active, _max_active
    with _lock:
        _active += 1
        _max_active = max(_max_active, _active)
        _started.append(payload.get("i"))
    time.sleep(payload.get("sleep", 0))
    with _lock:
        seen, started = _max_active, list(_started)
        _active -= 1
    return {"max_concurrent_seen": seen, "started": started, "pid": os.getpid()}


class Greeter:
    def __init__(self, greeting="hello", punctuation="!"):
        self.greeting = greeting
        self.punctuation = punctuation

    def greet(self, payload):
        return {"text": f"{self.greeting} {payload['name']}{self.punctuation}"}


def count_and_echo(payload):
    """Appends this call to payload['log'] (one line per call, so duplicates can be counted)."""
    with open(payload["log"], "a") as log:
        log.write(f"{payload['n']}\n")
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
    return payload
