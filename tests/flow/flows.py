"""Flows of the property test: branches, loops, try/except and fan-in over the actors in flow_actors.

Plain Python: importing this module and calling a flow runs it in-process (the oracle).
"""

from flow_actors import double, flaky, improve, inc, store, summarize  # noqa: F401


def branchy(p):
    p = inc(p)
    if p["x"] > 10 and "tag" in p:
        p = double(p)
    elif len(p["chunks"]) >= 3 or p["x"] < -20:
        p = store(p)
        return p
    else:
        p["note"] = "small"
    p = store(p)
    return p


def loopy(p):
    p["round"] = 0
    while p["round"] < 4 and p["score"] < 10:
        p = improve(p)
        p["round"] += 1
    for i in range(3):
        if i == 1 and p["x"] % 2 == 0:
            p = double(p)
        else:
            p = inc(p)
    return p


def guarded(p):
    try:
        p = flaky(p)
        p = inc(p)
    except ValueError:
        p["fallback"] = True
        p = store(p)
    return p


def joined(p):
    parts = [summarize(c) for c in p["chunks"]]
    p["summaries"] = parts
    if len(p["summaries"]) > 1 and "tag" not in p:
        p = store(p)
    return p


def everything(p):
    """A try inside a for loop (the except route is re-armed on every iteration), then fan-in, then a while."""
    for i in range(2):
        try:
            p = flaky(p)
        except ValueError:
            p["x"] = p["x"] + i + 1
            p = inc(p)
    if len(p["chunks"]) == 0 or p["x"] % 2 == 0:
        return p
    parts = [summarize(c) for c in p["chunks"]]
    p["summaries"] = parts
    p["round"] = 0
    while p["round"] <= 1 and p["score"] < 12:
        p = improve(p)
        p["round"] += 1
    return p
