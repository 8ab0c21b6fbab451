"""Pause and resume through the gateway: 422 keeps the pause, one of two resumes wins (the other 409),
the input lands at ``into`` of the envelope published to the next actor, expired pauses take their
``on_timeout`` outcome once. The pause itself is parked the way a sidecar parks it (``store.park``).
"""

from __future__ import annotations

import threading

import httpx

from asya_common import envelope as env
from tests.gateway.conftest import TOKENS
from tests.gateway.harness import SSEReader, StepActor, auth

SPEC = {"prompt": "Approve the draft?", "into": ".payload.review",
        "schema": {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}}


def paused(gateway, spec=SPEC, token=TOKENS["alice"]) -> str:
    """Submits the review tool, and has the review actor pause it (advanced to `publish`)."""
    envelope_id = httpx.post(f"{gateway.url}/envelopes", json={"tool": "review", "arguments": {"draft": "text"}},
                             headers=auth(token)).json()["id"]
    actor = StepActor(gateway.backend.location, gateway.transport, "review")
    try:
        envelope = actor.take()
        while envelope["id"] != envelope_id:
            envelope = actor.take()
        actor.running(envelope)
        assert actor.store.park(env.advance(env.copy_envelope(envelope)), spec, "review")
    finally:
        actor.close()
    return envelope_id


def take_published(gateway, envelope_id: str, actor_name: str = "publish") -> dict:
    actor = StepActor(gateway.backend.location, gateway.transport, actor_name)
    try:
        envelope = actor.take()
        while envelope["id"] != envelope_id:
            envelope = actor.take()
        return envelope
    finally:
        actor.close()


def resume(gateway, envelope_id, value, token=TOKENS["alice"]):
    return httpx.post(f"{gateway.url}/envelopes/{envelope_id}/resume", json={"input": value}, headers=auth(token),
                      timeout=30)


def status(gateway, envelope_id) -> str:
    return httpx.get(f"{gateway.url}/envelopes/{envelope_id}", headers=auth(TOKENS["alice"])).json()["status"]


def test_the_stream_shows_the_pause_with_its_prompt_and_schema(gateway):
    envelope_id = paused(gateway)
    assert status(gateway, envelope_id) == "paused"
    with SSEReader(f"{gateway.url}/envelopes/{envelope_id}/stream", auth(TOKENS["alice"])) as reader:
        frames = reader.frames()
        frame = next(f for f in frames if f["event"] == "paused")
    assert frame["data"]["data"]["prompt"] == "Approve the draft?"
    assert frame["data"]["data"]["schema"] == SPEC["schema"]
    assert frame["data"]["data"]["next_actor"] == "publish"


def test_input_that_breaks_the_schema_is_422_and_the_envelope_stays_paused(gateway):
    envelope_id = paused(gateway)
    response = resume(gateway, envelope_id, {"approved": "yes"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert "'yes' is not of type 'boolean'" in response.json()["error"]["message"]
    assert status(gateway, envelope_id) == "paused"
    assert resume(gateway, envelope_id, {"approved": True}).status_code == 200


def test_two_resumes_at_once_one_200_one_409_and_the_input_lands_at_into(gateway):
    envelope_id = paused(gateway)
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def go(value: bool) -> None:
        barrier.wait()
        answers.append(resume(gateway, envelope_id, {"approved": value}).status_code)

    threads = [threading.Thread(target=go, args=(v,)) for v in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409]
    published = take_published(gateway, envelope_id)
    assert published["route"]["curr"] == "publish" and published["route"]["prev"] == ["review"]
    assert published["payload"]["draft"] == "text" and published["payload"]["review"]["approved"] in (True, False)
    later = resume(gateway, envelope_id, {"approved": True})
    assert later.status_code == 409 and later.json()["error"]["code"] == "already_resumed"


def test_resume_needs_the_resume_scope_and_the_owner(gateway):
    envelope_id = paused(gateway)
    forbidden = resume(gateway, envelope_id, {"approved": True}, TOKENS["viewer"])
    assert forbidden.status_code == 403 and "'resume'" in forbidden.json()["error"]["message"]
    assert resume(gateway, envelope_id, {"approved": True}, TOKENS["bob"]).status_code == 404
    assert resume(gateway, "no-such-envelope", {"approved": True}).status_code == 404
    assert status(gateway, envelope_id) == "paused"


def test_an_expired_pause_resumes_with_its_defaults_once(gateway):
    spec = {**SPEC, "timeout": "300ms", "on_timeout": "resume", "defaults": {"approved": False}}
    envelope_id = paused(gateway, spec)
    published = take_published(gateway, envelope_id)
    assert published["payload"]["review"] == {"approved": False}
    assert resume(gateway, envelope_id, {"approved": True}).status_code == 409


def test_an_expired_pause_that_fails_goes_to_error_end_with_pause_timeout(gateway):
    envelope_id = paused(gateway, {**SPEC, "timeout": "300ms", "on_timeout": "fail"})
    failed = take_published(gateway, envelope_id, "error-end")
    assert failed["headers"]["x-asya-error"]["type"] == "PauseTimeout"
    assert failed["headers"]["x-asya-error"]["actor"] == "review"


def test_a_pause_survives_a_gateway_restart_and_is_resumed_through_the_new_one(gateway, tmp_path):
    from tests.gateway.conftest import KEYS, TOOLS
    from tests.gateway.harness import GatewayProcess

    envelope_id = paused(gateway)
    first = GatewayProcess(tmp_path, gateway.backend.location, gateway.transport, tools=TOOLS, keys=KEYS,
                           name="before").start()
    first.backend, first.transport = gateway.backend, gateway.transport
    assert status(first, envelope_id) == "paused"
    first.process.kill()  # no graceful shutdown
    first.process.wait()
    second = GatewayProcess(tmp_path, gateway.backend.location, gateway.transport, tools=TOOLS, keys=KEYS,
                            name="after").start()
    try:
        assert status(second, envelope_id) == "paused"
        assert resume(second, envelope_id, {"approved": True}).status_code == 200
        published = take_published(gateway, envelope_id)
        assert published["payload"]["review"] == {"approved": True}
    finally:
        second.stop()
        first.stop()
