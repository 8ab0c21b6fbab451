"""examples/digits/flow.py: the digits routing as a flow, on a real mesh and in-process with the real handlers.

The flow file is plain Python: called with the example's own handler objects (the scikit-learn
classifier, the prediction store, and the review desk answered by a stand-in person) it gives the expected
result, and the compiled flow on `asya dev` gives the same result for confident scans, a batch (fan-in)
and a doubtful scan, which pauses at `human-review` until `asya paused resume` answers it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.flow.test_property_mesh import run_batch
from tests.support.mesh import Mesh

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
from sklearn.datasets import load_digits  # noqa: E402

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
PERSON = {"label": 8, "note": "two digits overlaid"}
ACTORS = DIGITS / "actors"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"digits_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process_flows(workdir: Path) -> dict:
    """The flow file executed with the real handlers bound to the actor names it calls."""
    classify = _module(ACTORS / "classify.py").DigitClassifier(C=0.5)
    desk = _module(ACTORS / "review.py").ReviewDesk()

    def human_review(p: dict) -> dict:  # the generator parks the scan; a person answers PERSON at .payload.review
        ops = [item[0] for item in desk.review(p) if isinstance(item, tuple)]
        assert "PAUSE" in ops
        return {**p, "review": PERSON}

    store = _module(ACTORS / "store.py").PredictionStore(path=str(workdir / "predictions.jsonl"))
    namespace = {"validate": _module(ACTORS / "validate.py").validate, "classify": classify.predict,
                 "human_review": human_review, "store": store.store}
    exec(compile((DIGITS / "flow.py").read_text(), str(DIGITS / "flow.py"), "exec"), namespace)  # noqa: S102
    return namespace


def cases() -> list[tuple[str, dict]]:
    digits = load_digits()
    scans = [{"scan_id": f"scan-{i}", "pixels": digits.data[i].tolist(), "true_label": int(digits.target[i])}
             for i in (1790, 1791, 1792, 1793)]
    blend = [(a + b) / 2 for a, b in zip(digits.data[1787], digits.data[1793])]
    doubtful = {"scan_id": "blurred", "pixels": blend, "true_label": None}
    batch = {"batch": [{"scan_id": f"b{i}", "pixels": digits.data[i].tolist()} for i in (1780, 1781, 1782)]}
    return [("digits_flow", s) for s in [*scans, doubtful]] + [("digits_batch", batch)]


def test_digits_flow_in_process_and_on_the_mesh_agree(tmp_path):
    flows = in_process_flows(tmp_path)
    jobs = cases()
    expected = [json.loads(json.dumps(flows[name](dict(payload)))) for name, payload in jobs]
    verdicts = sorted(e.get("verdict") for e in expected[:-1])
    assert {"auto", "human"} <= set(verdicts), f"the cases must take both branches, got {verdicts}"
    assert [p["label"] for p in expected[-1]["predictions"]] == [int(load_digits().target[i]) for i in
                                                                 (1780, 1781, 1782)]
    files = [DIGITS / "flow.py", *(ACTORS / f"{n}.yaml" for n in ("validate", "classify", "review", "store"))]
    mesh = Mesh(tmp_path / "mesh", [], files=files).start(timeout=300)
    try:
        confident = [i for i, e in enumerate(expected) if e.get("verdict") != "human"]
        results = list(run_batch(mesh, [jobs[i] for i in confident], timeout=300).values())
        doubtful = [i for i, e in enumerate(expected) if e.get("verdict") == "human"]
        answered = [_send_and_answer(mesh, jobs[i][1]) for i in doubtful]
    finally:
        assert mesh.stop() == 0
    for i, (status, result) in zip(confident, results):
        assert status == "succeeded", (jobs[i][0], result)
        assert result == expected[i], jobs[i][0]
    assert answered == [expected[i] for i in doubtful]


def _asya(mesh: Mesh, *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "asya_cli.main", *argv, "--state-dir", str(mesh.state)],
                          capture_output=True, text=True, cwd=mesh.tmp, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _send_and_answer(mesh: Mesh, payload: dict) -> dict:
    """`asya send --flow`, wait for the pause at human-review, answer it as the person, return the result."""
    envelope_id = _asya(mesh, "send", "--flow", "digits_flow", "--payload", json.dumps(payload)).strip()
    deadline = time.monotonic() + 180
    while (mesh.store.get(envelope_id) or {}).get("status") != "paused":
        assert time.monotonic() < deadline, f"never paused: {mesh.store.get(envelope_id)}"
        time.sleep(0.1)
    _asya(mesh, "paused", "resume", envelope_id, "--input", json.dumps(PERSON))
    record = mesh.wait_final(envelope_id, timeout=180)
    assert record["status"] == "succeeded", record
    return record["result"]
