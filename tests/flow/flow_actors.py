"""Actors of the flow tests: plain functions, called in-process by the oracle and as mesh actors.

Deterministic, so one input always takes the same path through a flow both ways.
"""


def inc(p):
    return {**p, "x": p["x"] + 1, "trace": p.get("trace", []) + ["inc"]}


def double(p):
    return {**p, "x": p["x"] * 2, "trace": p.get("trace", []) + ["double"]}


def improve(p):
    return {**p, "score": p["score"] + 3, "trace": p.get("trace", []) + ["improve"]}


def flaky(p):
    """Fails for some inputs: ValueError (caught by the flows) or KeyError (not caught)."""
    if p["x"] % 7 == 0:
        raise KeyError(f"no slot for {p['x']}")
    if p["x"] % 3 == 0:
        raise ValueError(f"x={p['x']} is a multiple of 3")
    return {**p, "x": p["x"] + 10, "trace": p.get("trace", []) + ["flaky"]}


def summarize(c):
    return {"n": c, "square": c * c}


def store(p):
    return {**p, "stored": True, "trace": p.get("trace", []) + ["store"]}


def slow_square(c):
    """A fan-out child that takes a little while (so the collector can be killed mid-join); -1 fails."""
    import time

    time.sleep(0.02)
    if c == -1:
        raise ValueError("cannot square -1 today")
    return c * c


def after(p):
    """The continuation after a fan-in: logs the state's key once per call (the crash test counts lines)."""
    with open("after.log", "a", encoding="utf-8") as log:
        log.write(p["key"] + "\n")
    return {**p, "after": True}
