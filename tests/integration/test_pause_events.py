"""What the sidecars and the crew write to the events feed on a real dev mesh (the stream a client sees)."""

from __future__ import annotations

import pytest

from asya_common.status import FLY, SUCCEEDED
from tests.support.mesh import Mesh

ACTORS = [
    {"name": "stream", "handler": "pause_handlers.stream_then_fan_out",
     "resiliency": {"actorTimeout": "20s", "policies": {"default": {"maxAttempts": 1}}}},
    {"name": "publish", "handler": "pause_handlers.publish",
     "resiliency": {"actorTimeout": "20s", "policies": {"default": {"maxAttempts": 1}}}},
]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    running = Mesh(tmp_path_factory.mktemp("events"), ACTORS).start()
    yield running
    running.stop()


def test_fly_chunks_spawned_children_and_final_events_of_one_root_in_order(mesh):
    sent = mesh.send(["stream", "publish"], {"tokens": 200, "parts": 3})
    tree = mesh.wait_final(sent["id"], 60)
    assert sorted(b["id"] for b in tree.get("branches", [])) == [f"{sent['id']}-1", f"{sent['id']}-2"]
    assert all(b["root_id"] == sent["id"] for b in tree["branches"])
    events = mesh.store.events(sent["id"])
    kinds = [e.kind for e in events]
    assert [e.data["token"] for e in events if e.kind == FLY] == list(range(200))
    [spawned] = [e for e in events if e.kind == "spawned"]
    assert spawned.actor == "stream" and spawned.data == {"children": [f"{sent['id']}-1", f"{sent['id']}-2"]}
    finals = [e for e in events if e.kind == SUCCEEDED]
    assert sorted(e.envelope_id for e in finals) == sorted([sent["id"], f"{sent['id']}-1", f"{sent['id']}-2"])
    # the sidecar lets its chunks reach the store before publishing: every chunk precedes every final event
    assert max(e.seq for e in events if e.kind == FLY) < min(e.seq for e in finals)
    assert kinds[0] == "created" and kinds[1] == "running"
    assert {e.actor for e in events if e.kind == "running"} == {"stream", "publish"}  # never the crew's hops
    assert [e.actor for e in events if e.kind == "running"].count("publish") == 3
