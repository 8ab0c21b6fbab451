"""Paused envelopes on both backends: park once, claim once, resume with validated input, expire once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from asya_common import envelope as env
from asya_common.status import (
    FAILED, PAUSED, RUNNING, PauseConflict, PauseInputInvalid, PauseNotFound, PauseSpecError, open_store,
)
from asya_common.status.pause import PAUSE_TIMEOUT, expire_pauses, resume_paused
from asya_common.transport import QueueSpec, TransportSettings, create_transport

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def transport(tmp_path):
    """The embedded SQLite queue (the broker is not what these tests are about)."""
    settings = TransportSettings(kind="sqlite", sqlite_path=str(tmp_path / "queues.sqlite3"))

    async def make():
        t = create_transport(settings)
        await t.connect()
        for actor in ("review", "publish", "error-end"):
            await t.ensure_queue(QueueSpec(env.queue_name(actor)))
        return t

    t = asyncio.run(make())
    yield t
    asyncio.run(t.close())


def receive_one(transport, actor):
    async def go():
        messages = await transport.receive(env.queue_name(actor), max_messages=10, wait_seconds=2, lease_seconds=30)
        for m in messages:
            await transport.ack(m)
        return [env.loads(m.body) for m in messages]
    return asyncio.run(go())


def paused_envelope(store, spec=None):
    """What the review sidecar parks: the envelope routed one hop past ``review``."""
    e = env.make_envelope(["review", "publish"], {"digit": 7})
    store.create(e)
    routed = env.advance(env.copy_envelope(e))
    store.park(routed, spec or {"prompt": "Is it a 7?", "schema": SCHEMA, "into": ".payload.review"}, "review")
    return e["id"]


def test_park_is_keyed_by_id_so_a_redelivery_parks_once(store):
    eid = paused_envelope(store)
    routed = store.get_pause(eid)["envelope"]
    store.mark_running(eid, "review")  # the redelivered input runs again and pauses again
    assert store.park(routed, {"prompt": "Is it a 7?"}, "review") is False
    assert store.get(eid)["status"] == PAUSED
    assert [e.kind for e in store.events(eid)].count("paused") == 1
    pauses = store.list_pauses()
    assert [p["id"] for p in pauses] == [eid] and pauses[0]["next_actor"] == "publish"
    paused_event = [e for e in store.events(eid) if e.kind == "paused"][0]
    assert paused_event.data["prompt"] == "Is it a 7?" and paused_event.data["schema"] == SCHEMA


def test_bad_spec_is_refused_with_the_reason(store):
    e = env.advance(env.make_envelope(["review", "publish"], 1))
    for spec, reason in (({"into": "payload.x"}, "'into' must be"), ({"timeout": "soon"}, "timeout"),
                         ({"on_timeout": "retry"}, "on_timeout"), ({"colour": 1}, "unknown PAUSE spec keys"),
                         ("stop", "dict spec")):
        with pytest.raises(PauseSpecError, match=reason):
            store.park(e, spec, "review")
    assert store.get_pause(e["id"]) is None


def test_claim_is_atomic_one_winner_among_threads(store_url):
    setup = open_store(store_url)
    eid = paused_envelope(setup)
    stores = [open_store(store_url) for _ in range(4)]
    results, barrier = [], threading.Barrier(4)

    def claim(s):
        barrier.wait()
        try:
            results.append(s.claim_pause(eid)["id"])
        except PauseConflict as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count(eid) == 1
    assert sum("being resumed by another request" in r for r in results) == 3
    with pytest.raises(PauseNotFound, match="no paused envelope with id 'nope'"):
        setup.claim_pause("nope")


def test_resume_validates_merges_publishes_and_a_second_resume_conflicts(store, transport):
    eid = paused_envelope(store)
    with pytest.raises(PauseInputInvalid, match=r"\$.approved: 'yes' is not of type 'boolean'"):
        asyncio.run(resume_paused(store, transport, eid, {"approved": "yes"}))
    with pytest.raises(PauseInputInvalid, match="'approved' is a required property"):
        asyncio.run(resume_paused(store, transport, eid, {}))
    assert store.get_pause(eid)["status"] == "paused" and store.get(eid)["status"] == PAUSED
    assert receive_one(transport, "publish") == []

    published = asyncio.run(resume_paused(store, transport, eid, {"approved": True}))
    assert published["payload"] == {"digit": 7, "review": {"approved": True}}
    [received] = receive_one(transport, "publish")
    assert received["id"] == eid and received["payload"]["review"] == {"approved": True}
    assert received["route"] == {"prev": ["review"], "curr": "publish", "next": []}
    record = store.get(eid)
    assert record["status"] == RUNNING and record["actor"] == "publish" and record["paused_seconds"] > 0
    assert [e.kind for e in store.events(eid)][-1] == "resumed"
    with pytest.raises(PauseConflict, match="already resumed"):
        asyncio.run(resume_paused(store, transport, eid, {"approved": False}))
    with pytest.raises(PauseNotFound):
        asyncio.run(resume_paused(store, transport, "unknown", {"approved": False}))


def test_failed_publish_releases_the_claim(store, tmp_path):
    eid = paused_envelope(store)

    class Down:
        async def send(self, queue, body, *, delay_seconds=0.0):
            raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        asyncio.run(resume_paused(store, Down(), eid, {"approved": True}))
    assert store.get_pause(eid)["status"] == "paused"
    [resumed, paused_again] = store.events(eid)[-2:]  # the history says what happened, in order
    assert resumed.kind == "resumed" and paused_again.kind == "paused"
    assert paused_again.data == {"resume_failed": "ConnectionError: broker down"}
    assert store.claim_pause(eid)["id"] == eid  # still resumable


def test_the_resumed_event_precedes_anything_the_next_actor_records(store):
    """The next actor may run as soon as the envelope is published: its events must come after ``resumed``."""
    eid = paused_envelope(store)

    class NextActorIsFast:
        async def send(self, queue, body, *, delay_seconds=0.0):
            store.mark_running(eid, "publish")  # what the next sidecar writes when it picks the envelope up

    asyncio.run(resume_paused(store, NextActorIsFast(), eid, {"approved": True}))
    assert [e.kind for e in store.events(eid)][-2:] == ["resumed", "running"]
    assert store.get(eid)["status"] == RUNNING and store.get(eid)["actor"] == "publish"


def test_expired_pause_fails_into_error_end_once_across_replicas(store_url, transport):
    a, b = open_store(store_url), open_store(store_url)
    eid = paused_envelope(a, {"prompt": "ok?", "timeout": "1s", "on_timeout": "fail"})
    assert asyncio.run(expire_pauses(a, transport)) == []  # not yet
    later = time.time() + 5
    handled = asyncio.run(expire_pauses(a, transport, now=later)) + asyncio.run(expire_pauses(b, transport, now=later))
    assert handled == [eid]
    [failed] = receive_one(transport, "error-end")
    error = failed["headers"][env.H_ERROR]
    assert error["type"] == PAUSE_TIMEOUT and error["actor"] == "review"
    # replay puts it back in front of the pausing actor with the rest of the route intact
    assert failed["route"] == {"prev": ["review"], "curr": "error-end", "next": ["publish"]}
    with pytest.raises(PauseConflict, match="already expired"):
        asyncio.run(resume_paused(a, transport, eid, {"approved": True}))


def test_expired_pause_can_resume_with_defaults(store, transport):
    eid = paused_envelope(store, {"prompt": "ok?", "timeout": "1s", "on_timeout": "resume",
                                  "into": ".payload.review", "defaults": {"approved": False}})
    assert asyncio.run(expire_pauses(store, transport, now=time.time() + 5)) == [eid]
    [resumed] = receive_one(transport, "publish")
    assert resumed["payload"]["review"] == {"approved": False}
    assert store.get(eid)["status"] == RUNNING and store.get_pause(eid)["status"] == "expired"


def test_claim_expired_is_atomic_across_threads(store_url):
    setup = open_store(store_url)
    ids = [paused_envelope(setup, {"timeout": 0.5}) for _ in range(10)]
    stores = [open_store(store_url) for _ in range(3)]
    got, barrier = [], threading.Barrier(3)

    def claim(s):
        barrier.wait()
        got.extend(p["id"] for p in s.claim_expired(time.time() + 10))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got) == sorted(ids)


def test_cancel_ends_a_pause(store, transport):
    eid = paused_envelope(store)
    assert store.cancel(eid) is True
    with pytest.raises(PauseConflict, match="already canceled"):
        asyncio.run(resume_paused(store, transport, eid, {"approved": True}))
    assert store.get(eid)["status"] == "canceled"


def test_failed_record_of_a_timeout_is_replayable(store):
    from asya_cli.replay import replay_envelope
    from asya_common.status.pause import timeout_envelope

    eid = paused_envelope(store, {"timeout": "1s"})
    failed = timeout_envelope(store.claim_expired(time.time() + 5)[0])
    store.record_final(failed, FAILED, actor="review", error=failed["headers"][env.H_ERROR])
    actor, replay = replay_envelope(store, eid)
    assert actor == "review" and replay["route"] == {"prev": [], "curr": "review", "next": ["publish"]}


def test_a_replayed_expired_pause_parks_again_but_a_resumed_one_only_at_a_later_hop(store):
    eid = paused_envelope(store, {"timeout": "1s"})
    routed = store.get_pause(eid)["envelope"]
    store.claim_expired(time.time() + 5)
    store.finish_pause(eid, "expired", actor="error-end", resumed=False)
    assert store.park(routed, {"prompt": "again"}, "review") is True  # asya replay ran review again
    assert store.get_pause(eid)["status"] == "paused" and store.get(eid)["status"] == PAUSED
    store.claim_pause(eid)
    store.finish_pause(eid, "resumed", actor="publish", resumed=True)
    assert store.park(routed, {"prompt": "dup"}, "review") is False  # a stale redelivery of the same hop
    later = env.advance(env.copy_envelope(routed))
    assert store.park(later, {"prompt": "second review"}, "publish") is True


def test_an_envelope_canceled_before_it_pauses_stops_there(store, transport):
    e = env.make_envelope(["review", "publish"], {"digit": 7})
    store.create(e)
    assert store.cancel(e["id"]) is True
    assert store.park(env.advance(env.copy_envelope(e)), {"prompt": "ok?"}, "review") is True  # acked, not parked
    assert store.get(e["id"])["status"] == "canceled" and store.list_pauses() == []
    with pytest.raises(PauseConflict, match="already canceled"):
        asyncio.run(resume_paused(store, transport, e["id"], {"approved": True}))
