"""Handlers that pause for a person (payload and envelope mode)."""


def review(payload):
    yield ("FLY", {"status": "asking"})
    yield ("PAUSE", {"prompt": "Is this right?", "schema": {"type": "object"}, "into": ".payload.review"})


def review_then_output(payload):
    yield ("PAUSE", {"prompt": "ok?"})
    yield {"prepared": payload}


def bad_pause(payload):
    yield ("PAUSE", "stop here")


def envelope_review(envelope):
    yield ("PAUSE", {"prompt": "env?"})


def passthrough(payload):
    return payload


def envelope_passthrough(envelope):
    return envelope
