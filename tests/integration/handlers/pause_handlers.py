"""Handlers of the pause tests (tests/integration/test_pause*.py): a person reviews between two actors."""

REVIEW_SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
                 "required": ["approved"], "additionalProperties": False}


def review(payload):
    """Streams a note, then waits for a person's decision under payload.review."""
    yield ("FLY", {"text": f"please review {payload}"})
    yield ("PAUSE", {"prompt": "Approve this?", "schema": REVIEW_SCHEMA, "into": ".payload.review"})


def review_with_timeout(payload):
    """Waits at most one second; then the envelope fails with PauseTimeout (replayable)."""
    yield ("PAUSE", {"prompt": "Quick!", "schema": REVIEW_SCHEMA, "into": ".payload.review", "timeout": "1s",
                     "on_timeout": "fail"})


def review_envelope(envelope):
    """Envelope mode: the handler sets the x-asya-pause header on the envelope it returns."""
    envelope["headers"]["x-asya-pause"] = {"prompt": "Envelope-mode approval?", "into": ".payload.review"}
    return envelope


def publish(payload):
    """The actor after the pause: acts on the person's input."""
    return {**payload, "published": bool(payload["review"]["approved"])}


def pause_and_fan_out(payload):
    """A contract error: one pause cannot park two outputs."""
    yield ("PAUSE", {"prompt": "which one?"})
    yield {"part": 1}
    yield {"part": 2}


def stream_then_fan_out(payload):
    """Streams tokens, then fans out into ``payload['parts']`` children."""
    for i in range(payload["tokens"]):
        yield ("FLY", {"token": i})
    for part in range(payload["parts"]):
        yield {"part": part, "review": {"approved": part % 2 == 0}}
