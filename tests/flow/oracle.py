"""The oracle side of the flow tests: the flow functions called in-process with the real actor functions."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
FLOWS_FILE = HERE / "flows.py"
ACTORS_FILE = HERE / "flow_actors.py"
FLOW_NAMES = ("branchy", "loopy", "guarded", "joined", "everything")

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import flow_actors  # noqa: E402
import flows  # noqa: E402

ACTORS = {name.replace("_", "-"): getattr(flow_actors, name)
          for name in ("inc", "double", "improve", "flaky", "summarize", "store")}


def expected(flow: str, payload: dict[str, Any]) -> tuple[str, Any]:
    """("succeeded", JSON-normalised result) or ("failed", error class name), calling the flow in-process."""
    try:
        result = getattr(flows, flow)(copy.deepcopy(payload))
    except Exception as exc:  # noqa: BLE001 - a flow that fails ends in error-end with this type
        return "failed", type(exc).__name__
    return "succeeded", json.loads(json.dumps(result))


def inputs() -> st.SearchStrategy[dict[str, Any]]:
    """State dicts that drive every branch, loop count, caught and uncaught error, and fan-out size (0..4)."""
    base = st.fixed_dictionaries({
        "x": st.integers(-40, 40),
        "score": st.integers(0, 12),
        "chunks": st.lists(st.integers(-9, 9), max_size=4),
    })
    return st.tuples(base, st.booleans()).map(lambda t: {**t[0], "tag": "t"} if t[1] else t[0])
