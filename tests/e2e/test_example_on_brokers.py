"""The digits example pipeline end to end on every transport: `asya dev --transport X` with real brokers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sklearn.datasets import load_digits

from tests.support.mesh import Mesh

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits" / "actors"
ROUTE = ["validate", "classify", "judge"]


@pytest.fixture(params=["sqlite", "rabbitmq", "sqs", "pubsub"])
def transport(request, tmp_path):
    if request.param == "sqlite":
        return None  # the mesh's own embedded queue
    settings = request.getfixturevalue(f"{request.param}_settings")
    return replace(settings, queue_prefix=f"e2e{uuid.uuid4().hex[:8]}-")


def test_digits_pipeline_reaches_happy_end_and_error_end(tmp_path, transport):
    mesh = Mesh(tmp_path, [], files=sorted(EXAMPLE.glob("*.yaml")), transport=transport).start(timeout=120)
    try:
        digits = load_digits()
        scan = mesh.send(ROUTE, {"scan_id": "s1", "pixels": digits.data[1791].tolist(),
                                 "true_label": int(digits.target[1791])})
        batch = mesh.send(ROUTE, {"batch": [{"scan_id": f"b{i}", "pixels": digits.data[i].tolist()}
                                            for i in (1780, 1782)]})
        broken = mesh.send(ROUTE, {"scan_id": "broken", "pixels": [0] * 63})
        done = mesh.wait_final(scan["id"], timeout=90)
        assert done["status"] == "succeeded"
        assert done["result"]["label"] == int(digits.target[1791]) and done["result"]["verdict"] == "auto"
        fanned = mesh.wait_final(batch["id"], timeout=90)
        assert [b["status"] for b in fanned["branches"]] == ["succeeded"]
        assert {fanned["result"]["label"], fanned["branches"][0]["result"]["label"]} == {
            int(digits.target[1780]), int(digits.target[1782])}
        failed = mesh.wait_final(broken["id"], timeout=90)
        assert failed["status"] == "failed" and failed["error"]["actor"] == "validate"
        assert len(failed["error"]["attempts"]) == 2
    finally:
        mesh.stop()
