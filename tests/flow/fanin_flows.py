"""The fan-in crash test's flow: fan out over the chunks, join, then one continuation actor."""

from flow_actors import after, slow_square  # noqa: F401


def fan(p):
    parts = [slow_square(c) for c in p["chunks"]]
    p["squares"] = parts
    p = after(p)
    return p
