"""Routes by confidence: confident predictions go to `store`, doubtful ones to `human-review`.

A generator handler: it rewrites the rest of the route, streams a note, then emits the payload.
"""


class Judge:
    def __init__(self, threshold=0.9):
        self.threshold = threshold

    def judge(self, payload):
        confident = payload["confidence"] >= self.threshold
        verdict = "auto" if confident else "review"
        yield ("SET", ".route.next", ["store"] if confident else ["human-review", "store"])
        yield ("SET", ".headers.x-verdict", verdict)
        yield ("FLY", {"scan_id": payload.get("scan_id"), "verdict": verdict})
        yield {**payload, "verdict": verdict}
