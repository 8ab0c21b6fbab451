"""Build step (``RUN`` in the Dockerfile): writes the model file that the image ships.

Stands in for downloading or training weights at build time: ``python -m sentiment.build_lexicon PATH``.
"""

import json
import sys
from pathlib import Path

WORDS = {"great": 1.0, "good": 0.6, "fine": 0.2, "bad": -0.7, "awful": -1.0, "broken": -0.8}


def main(path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(WORDS, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
