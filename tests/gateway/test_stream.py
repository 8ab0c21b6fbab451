"""SSE: a root's events in order (FLY chunks included), ``id:`` = seq, resumable with Last-Event-ID,
keep-alives while nothing happens, closed after the final event; two replicas over one PostgreSQL.

The actor is a :class:`StepActor` so each test decides when every chunk exists (the real mesh streams
through the same store in test_mesh.py).
"""

from __future__ import annotations

import threading

import httpx

from tests.gateway.conftest import KEYS, TOOLS, TOKENS
from tests.gateway.harness import GatewayProcess, SSEReader, StepActor, auth


def start(gateway, text: str) -> tuple[str, StepActor, dict]:
    envelope_id = httpx.post(f"{gateway.url}/envelopes", json={"tool": "echo", "arguments": {"text": text}},
                             headers=auth(TOKENS["alice"])).json()["id"]
    actor = StepActor(gateway.backend.location, gateway.transport, "echo")
    envelope = actor.take()
    while envelope["id"] != envelope_id:
        envelope = actor.take()
    return envelope_id, actor, envelope


def test_stream_sends_every_event_in_order_and_closes_after_the_final_one(gateway):
    envelope_id, actor, envelope = start(gateway, "order")
    try:
        with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
            frames = reader.frames()
            created = next(frames)
            assert created["event"] == "created" and created["data"]["envelope_id"] == envelope_id
            actor.running(envelope)
            for i in range(20):
                actor.fly(envelope, {"text": f"t{i} "})
            actor.finish(envelope, {"done": True})
            rest = list(frames)  # ends only when the server closes the stream
        kinds = [f["event"] for f in rest]
        assert kinds == ["running", *["fly"] * 20, "succeeded", "end"]
        chunks = [f["data"]["data"]["text"] for f in rest if f["event"] == "fly"]
        assert chunks == [f"t{i} " for i in range(20)]
        ids = [int(f["id"]) for f in [created, *rest[:-1]]]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(int(f["id"]) == f["data"]["seq"] for f in rest[:-1])
        assert rest[-1]["data"]["status"] == "succeeded" and rest[-1]["data"]["result"] == {"done": True}
    finally:
        actor.close()


def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(gateway):
    envelope_id, actor, envelope = start(gateway, "resume")
    try:
        actor.running(envelope)
        seen: list[int] = []
        with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
            frames = reader.frames()
            for i in range(10):
                actor.fly(envelope, {"text": f"a{i}"})
            for frame in frames:
                seen.append(int(frame["id"]))
                if frame["event"] == "fly" and frame["data"]["data"]["text"] == "a4":
                    break  # the client drops the connection mid-stream
        for i in range(10):  # written while nobody is connected
            actor.fly(envelope, {"text": f"b{i}"})
        last = seen[-1]
        with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream",
                       {**auth(TOKENS["alice"]), "Last-Event-ID": str(last)}) as reader:
            frames = reader.frames()
            texts = []
            for frame in frames:
                seen.append(int(frame["id"]))
                if frame["event"] == "fly":
                    texts.append(frame["data"]["data"]["text"])
                if len(texts) == 15:
                    break
            actor.finish(envelope, "ok")
            tail = list(frames)
        assert texts == [f"a{i}" for i in range(5, 10)] + [f"b{i}" for i in range(10)]
        assert [f["event"] for f in tail] == ["succeeded", "end"]
        assert len(seen) == len(set(seen)), "an event was sent twice across the reconnect"
    finally:
        actor.close()


def test_keep_alives_while_the_envelope_is_quiet(gateway):
    envelope_id, actor, envelope = start(gateway, "quiet")
    try:
        with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
            frames = reader.frames()
            next(frames)
            done = threading.Event()

            def finish_after_keepalives() -> None:
                while reader.comments < 2 and not done.wait(0.05):
                    pass
                actor.finish(envelope, "late")

            worker = threading.Thread(target=finish_after_keepalives)
            worker.start()
            rest = list(frames)
            done.set()
            worker.join()
        assert reader.comments >= 2, "no keep-alive comment while nothing happened"
        assert [f["event"] for f in rest] == ["succeeded", "end"]
    finally:
        actor.close()


def test_streaming_a_finished_envelope_replays_its_events_and_closes(gateway):
    envelope_id, actor, envelope = start(gateway, "replay")
    try:
        actor.running(envelope)
        actor.fly(envelope, "x", "y")
        actor.finish(envelope, 1)
    finally:
        actor.close()
    with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
        frames = list(reader.frames())
    assert [f["event"] for f in frames] == ["created", "running", "fly", "fly", "succeeded", "end"]
    with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream?after={frames[2]['id']}",
                   auth(TOKENS["alice"])) as reader:
        assert [f["event"] for f in reader.frames()] == ["fly", "succeeded", "end"]


def test_a_bad_last_event_id_is_a_400(gateway):
    envelope_id, actor, _ = start(gateway, "bad id")
    actor.close()
    response = httpx.get(f"{gateway.url}/envelopes/{envelope_id}/stream",
                         headers={**auth(TOKENS["alice"]), "Last-Event-ID": "abc"})
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["error"]["message"]


def test_two_replicas_over_one_store_stream_what_the_other_accepted(gateway, tmp_path):
    """PostgreSQL: LISTEN/NOTIFY wakes replica A; SQLite (one node, one file): A polls by seq."""
    other = GatewayProcess(tmp_path, gateway.backend.location, gateway.transport, tools=TOOLS, keys=KEYS,
                           name="replica-b").start()
    other.backend, other.transport = gateway.backend, gateway.transport
    try:
        envelope_id, actor, envelope = start(other, "across")  # submitted through replica B
        try:
            with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
                frames = reader.frames()  # streamed from replica A
                assert next(frames)["event"] == "created"
                actor.running(envelope)
                for i in range(50):
                    actor.fly(envelope, {"text": str(i)})
                actor.finish(envelope, "done")
                rest = list(frames)
        finally:
            actor.close()
        assert [f["data"]["data"]["text"] for f in rest if f["event"] == "fly"] == [str(i) for i in range(50)]
        assert rest[-1]["event"] == "end" and rest[-1]["data"]["status"] == "succeeded"
    finally:
        other.stop()
