"""Human review: a doubtful scan waits for a person's label, then continues to `store`.

The handler streams a note and yields ``("PAUSE", ...)``: its sidecar parks the envelope in the
status store and nothing runs until someone answers, for example::

    asya paused list
    asya paused resume <id> --input '{"label": 8, "note": "two digits overlaid"}'

The answer is checked against ``schema`` and lands at ``payload.review``; ``store`` uses it. No
answer within ``timeout`` sends the scan to error-end with ``PauseTimeout`` (``asya replay`` asks again).
"""

LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "integer", "minimum": 0, "maximum": 9}, "note": {"type": "string"}},
    "required": ["label"],
    "additionalProperties": False,
}


class ReviewDesk:
    def __init__(self, timeout="24h"):
        self.timeout = timeout

    def review(self, payload):
        scan = payload.get("scan_id")
        yield ("FLY", {"scan_id": scan, "waiting_for": "a person"})
        yield ("PAUSE", {
            "prompt": f"Scan {scan}: the model says {payload['label']} at {payload['confidence']:.0%}. "
                      "Which digit is it?",
            "schema": LABEL_SCHEMA,
            "into": ".payload.review",
            "timeout": self.timeout,
            "on_timeout": "fail",
        })
