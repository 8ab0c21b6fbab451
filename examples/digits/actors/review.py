"""Human review stand-in: queues doubtful scans in a review file for a person to look at."""

import json
import os
import time


class ReviewDesk:
    def __init__(self, review_file="review-queue.jsonl"):
        self.review_file = review_file

    def review(self, payload):
        os.makedirs(os.path.dirname(os.path.abspath(self.review_file)), exist_ok=True)
        with open(self.review_file, "a", encoding="utf-8") as out:
            out.write(json.dumps({"scan_id": payload.get("scan_id"), "label": payload["label"],
                                  "confidence": payload["confidence"], "queued_at": time.time()}) + "\n")
        return {**payload, "reviewed": "queued-for-person"}
