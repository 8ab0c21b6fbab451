"""Records and their events on both backends: what ``asya status`` and the gateway read."""

from __future__ import annotations

import pytest

from asya_common import envelope as env
from asya_common.status import (
    CANCELED, DEAD_LETTERED, FAILED, PENDING, RUNNING, SUCCEEDED, Event, is_settled, open_store,
)


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def kinds(store, root):
    return [(e.kind, e.envelope_id) for e in store.events(root)]


def test_create_is_idempotent_and_writes_one_created_event(store):
    e = env.make_envelope(["a", "b"], {"x": 1})
    assert store.create(e, owner="key1") is True
    assert store.create(e, owner="key1") is False
    record = store.get(e["id"])
    assert record["status"] == PENDING and record["owner"] == "key1" and record["root_id"] == e["id"]
    assert kinds(store, e["id"]) == [("created", e["id"])]


def test_fanout_children_carry_the_root_of_the_submitted_envelope(store):
    root = env.make_envelope(["split", "work"], [1, 2])
    store.create(root)
    store.mark_running(root["id"], "split")
    store.mark_spawned(root["id"], [f"{root['id']}-1", f"{root['id']}-2"], "split")
    store.mark_spawned(f"{root['id']}-1", [f"{root['id']}-1-1"], "work")  # a grandchild
    for child in (f"{root['id']}-1", f"{root['id']}-2", f"{root['id']}-1-1"):
        assert store.get(child)["root_id"] == root["id"]
    # the crew's final record of a child it never saw registered still lands under the root
    late = {"id": f"{root['id']}-3", "parent_id": root["id"], "route": {"prev": ["split"], "curr": "happy-end",
                                                                      "next": []}, "headers": {}, "payload": 3}
    store.record_final(late, SUCCEEDED, actor="work", result=3)
    assert store.get(late["id"])["root_id"] == root["id"]
    tree = store.tree(root["id"])
    assert sorted(b["id"] for b in tree["branches"]) == [f"{root['id']}-{i}" for i in (1, 2, 3)]
    assert [e.kind for e in store.events(root["id"])] == ["created", "running", "spawned", "spawned", "succeeded"]


def test_record_final_writes_one_final_event_even_when_redelivered(store):
    e = env.make_envelope(["a"], "in")
    store.create(e)
    done = {**e, "route": {"prev": ["a"], "curr": "happy-end", "next": []}, "payload": "out"}
    store.record_final(done, SUCCEEDED, actor="a", result="out")
    store.record_final(done, SUCCEEDED, actor="a", result="out")
    assert store.get(e["id"])["result"] == "out"
    assert [k for k, _ in kinds(store, e["id"])] == ["created", "succeeded"]
    assert store.events(e["id"])[-1].data == {"result": "out"}
    assert is_settled(store.tree(e["id"]))


def test_failed_record_keeps_payload_and_error_summary_event(store):
    e = env.make_envelope(["a"], {"n": 1})
    failed = env.to_error_end(e, {"actor": "a", "type": "ValueError", "message": "bad", "traceback": "tb"})
    store.record_final(failed, FAILED, actor="a", error=failed["headers"][env.H_ERROR])
    record = store.get(e["id"])
    assert record["status"] == FAILED and record["payload"] == {"n": 1} and record["error"]["traceback"] == "tb"
    assert store.events(e["id"])[-1].data == {"error": {"actor": "a", "type": "ValueError", "message": "bad"}}


def test_running_never_moves_a_final_record_back(store):
    e = env.make_envelope(["a"], 1)
    store.record_final(e, SUCCEEDED, actor="a", result=1)
    store.mark_running(e["id"], "a")  # a late redelivery
    assert store.get(e["id"])["status"] == SUCCEEDED


def test_cancel_and_dead_lettered(store):
    e = env.make_envelope(["a"], 1)
    store.create(e)
    assert store.cancel(e["id"]) is True
    assert store.cancel(e["id"]) is False and store.cancel("nope") is False
    store.record_final(e, SUCCEEDED, actor="a", result=1)  # finishing later keeps it canceled
    assert store.get(e["id"])["status"] == CANCELED
    other = env.make_envelope(["b"], 2)
    store.create(other)
    store.mark_dead_lettered(other["id"], "asya-b-dlq")
    record = store.get(other["id"])
    assert record["status"] == DEAD_LETTERED and record["error"] == {"queue": "asya-b-dlq"}
    assert [e.kind for e in store.events(other["id"])] == ["created", "dead_lettered"]


def test_list_records_filters_and_pages_without_gaps(store):
    ids = []
    for i in range(7):
        e = env.make_envelope(["a" if i % 2 else "b"], i)
        store.create(e, owner="k1" if i < 5 else "k2")
        ids.append(e["id"])
    store.mark_running(ids[0], "b")
    seen, cursor = [], None
    while True:
        page, cursor = store.list_records(limit=3, cursor=cursor)
        seen += [r["id"] for r in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    assert [r["id"] for r in store.list_records(status=RUNNING)[0]] == [ids[0]]
    assert {r["id"] for r in store.list_records(owner="k2")[0]} == {ids[5], ids[6]}
    assert {r["id"] for r in store.list_records(actor="a", status=PENDING)[0]} == {ids[1], ids[3], ids[5]}
    with pytest.raises(ValueError, match="invalid cursor"):
        store.list_records(cursor="garbage")


def test_events_after_seq_and_events_since_are_in_order(store):
    a, b = env.make_envelope(["x"], 1), env.make_envelope(["x"], 2)
    store.create(a), store.create(b)
    seqs = store.append_events([Event(0, None, a["id"], "fly", "x", {"i": i}) for i in range(5)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    evs = store.events(a["id"], after_seq=seqs[1])
    assert [e.data for e in evs] == [{"i": 2}, {"i": 3}, {"i": 4}]
    assert all(e.root_id == a["id"] for e in evs)
    tail = store.events_since(0)
    assert [e.seq for e in tail] == sorted(e.seq for e in tail) and store.last_seq() == tail[-1].seq
    assert {e.root_id for e in tail} == {a["id"], b["id"]}


def test_unsupported_url_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unsupported status store URL mysql://"):
        open_store("mysql://x/y")
    assert open_store(f"sqlite://{tmp_path}/s.db").path == tmp_path / "s.db"
