"""The handler: ``sentiment.model.Scorer.score`` (handlerArgs: ``lexicon``, ``threshold``)."""

import json
import os
from pathlib import Path


class Scorer:
    def __init__(self, lexicon: str, threshold: float = 0.3):
        # read-only model baked into the image; loaded once per process, before the first message
        self.words = json.loads(Path(lexicon).read_text())
        self.threshold = threshold
        # anything written at run time goes under HOME, which the chart points at the writable /tmp
        self.cache = Path(os.environ["HOME"]) / ".cache" / "sentiment"
        self.cache.mkdir(parents=True, exist_ok=True)

    def score(self, payload: dict) -> dict:
        tokens = payload["text"].lower().split()
        value = sum(self.words.get(t, 0.0) for t in tokens)
        (self.cache / "last-score.txt").write_text(str(value))
        label = "positive" if value >= self.threshold else "negative" if value <= -self.threshold else "neutral"
        return {**payload, "sentiment": label, "score": round(value, 3)}
