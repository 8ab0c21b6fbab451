"""Handlers of the gateway's mesh tests and benchmarks; like a user's, they import nothing from Asya."""

import os
import time


def stream_words(payload):
    """Streams each word as a FLY chunk (slowly, like LLM tokens), then returns the word count."""
    words = payload["text"].split()
    for word in words:
        time.sleep(payload.get("delay", 0.05))
        yield ("FLY", {"text": word + " "})
    yield {"words": len(words)}


def stamp_chunks(payload):
    """Yields ``n`` FLY chunks carrying the wall-clock time of the yield (FLY latency benchmark).

    With ``go``: waits until that file exists first (the benchmark connects its clients meanwhile).
    """
    while payload.get("go") and not os.path.exists(payload["go"]):
        time.sleep(0.05)
    for i in range(payload["n"]):
        time.sleep(payload.get("interval", 0.02))
        yield ("FLY", {"i": i, "t": time.time()})
    yield {"n": payload["n"]}


def split(payload):
    """Fans out into ``n`` children."""
    return [{"part": i} for i in range(payload["n"])]


def approve(payload):
    """Asks a person to approve, then continues with their answer merged at payload.review."""
    yield ("FLY", {"text": "draft ready; "})
    yield ("PAUSE", {"prompt": "Approve the draft?", "into": ".payload.review",
                     "schema": {"type": "object", "required": ["approved"],
                                "properties": {"approved": {"type": "boolean"}}}})
    yield payload


def publish(payload):
    return {"published": payload.get("review", {}).get("approved", False), "draft": payload.get("draft")}
