"""Stores final predictions in a JSON-lines file, keyed by scan id (idempotent on redelivery).

A scan a person reviewed (``payload.review``, from the paused ``human-review``) is stored with the
person's label and verdict ``human``.
"""

import json
import os


class PredictionStore:
    def __init__(self, path="predictions.jsonl"):
        self.path = path

    def store(self, payload):
        review = payload.get("review")
        if review is not None:
            payload = {**payload, "model_label": payload["label"], "label": review["label"], "verdict": "human",
                       "note": review.get("note")}
        record = {k: payload.get(k) for k in ("scan_id", "label", "confidence", "verdict", "true_label")}
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return {"scan_id": payload.get("scan_id"), "label": payload["label"], "confidence": payload["confidence"],
                "verdict": payload.get("verdict"), "stored_in": os.path.basename(self.path),
                **({"model_label": payload["model_label"], "note": payload.get("note")} if review is not None else {})}
