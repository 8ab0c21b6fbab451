"""REST face on a real gateway process: submit, record tree, list, cancel, tools, probes, metrics.

Each test runs on a SQLite and on a PostgreSQL status store (see conftest.py).
"""

from __future__ import annotations

import httpx

from asya_common import envelope as env
from asya_common.status import open_store
from tests.gateway.conftest import TOKENS
from tests.gateway.harness import StepActor, auth, depth


def submit(gateway, body, token=TOKENS["alice"]):
    return httpx.post(f"{gateway.url}/envelopes", json=body, headers=auth(token), timeout=30)


def test_submit_records_pending_publishes_once_and_answers_202_with_urls(gateway):
    before = depth(gateway.transport, "echo")
    response = submit(gateway, {"tool": "echo", "arguments": {"text": "hello"}, "headers": {"x-team": "a"}})
    assert response.status_code == 202, response.text
    body = response.json()
    envelope_id = body["id"]
    assert body["status"] == "pending"
    assert body["status_url"] == f"/envelopes/{envelope_id}" == response.headers["location"]
    assert body["stream_url"] == f"/envelopes/{envelope_id}/stream"
    assert depth(gateway.transport, "echo") == before + 1
    record = httpx.get(f"{gateway.url}/envelopes/{envelope_id}", headers=auth(TOKENS["alice"])).json()
    assert record["status"] == "pending" and record["owner"] == "alice"
    actor = StepActor(gateway.backend.location, gateway.transport, "echo")
    try:
        published = actor.take()
        while published["id"] != envelope_id:  # earlier tests' envelopes on the shared queue
            published = actor.take()
        assert published["payload"] == {"text": "hello"}
        assert published["route"] == {"prev": [], "curr": "echo", "next": []}
        assert published["headers"]["x-team"] == "a" and published["headers"]["x-asya-tool"] == "echo"
        actor.running(published)
        actor.finish(published, {"echo": "hello"})
    finally:
        actor.close()
    final = httpx.get(f"{gateway.url}/envelopes/{envelope_id}", headers=auth(TOKENS["alice"])).json()
    assert final["status"] == "succeeded" and final["result"] == {"echo": "hello"}


def test_raw_route_needs_admin_and_then_publishes_to_the_first_actor(gateway):
    body = {"route": ["review", "publish"], "payload": {"draft": 1}}
    refused = submit(gateway, body)
    assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
    accepted = submit(gateway, body, TOKENS["root"])
    assert accepted.status_code == 202
    actor = StepActor(gateway.backend.location, gateway.transport, "review")
    try:
        published = actor.take()
        assert published["id"] == accepted.json()["id"]
        assert published["route"]["next"] == ["publish"]
    finally:
        actor.close()


def test_a_publish_failure_answers_503_and_marks_the_record_failed(gateway):
    response = submit(gateway, {"tool": "nowhere", "arguments": {}})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "publish_failed" and "missing-actor" in error["message"]
    record = httpx.get(f"{gateway.url}/envelopes/{error['id']}", headers=auth(TOKENS["alice"])).json()
    assert record["status"] == "failed"
    assert record["error"]["type"] == "PublishError", "nothing may stay pending forever"


def test_record_tree_shows_each_fan_out_child_once(gateway):
    response = submit(gateway, {"tool": "echo", "arguments": {"text": "split"}})
    envelope_id = response.json()["id"]
    store = open_store(gateway.backend.location)
    try:
        children = [env.fanout_id(envelope_id, i) for i in (1, 2)]
        store.mark_spawned(envelope_id, children, "echo")
        store.mark_spawned(envelope_id, children, "echo")  # an at-least-once redelivery reports them again
    finally:
        store.close()
    tree = httpx.get(f"{gateway.url}/envelopes/{envelope_id}", headers=auth(TOKENS["alice"])).json()
    assert sorted(b["id"] for b in tree["branches"]) == sorted(children)
    child = httpx.get(f"{gateway.url}/envelopes/{children[0]}", headers=auth(TOKENS["alice"])).json()
    assert child["parent_id"] == envelope_id and child["root_id"] == envelope_id


def test_list_filters_by_status_and_actor_pages_and_shows_only_own_records(gateway):
    ids = [submit(gateway, {"tool": "echo", "arguments": {"text": str(i)}}, TOKENS["bob"]).json()["id"]
           for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "status": "pending", "actor": "echo", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{gateway.url}/envelopes", params=params, headers=auth(TOKENS["bob"])).json()
        assert len(page["records"]) <= 2
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert all(r["owner"] == "bob" for r in httpx.get(f"{gateway.url}/envelopes", params={"limit": 500},
                                                       headers=auth(TOKENS["bob"])).json()["records"])
    alice = httpx.get(f"{gateway.url}/envelopes", params={"limit": 500}, headers=auth(TOKENS["alice"])).json()
    assert not set(ids) & {r["id"] for r in alice["records"]}
    admin = httpx.get(f"{gateway.url}/envelopes", params={"limit": 500}, headers=auth(TOKENS["root"])).json()
    assert set(ids) <= {r["id"] for r in admin["records"]}
    bad = httpx.get(f"{gateway.url}/envelopes", params={"status": "sleeping"}, headers=auth(TOKENS["bob"]))
    assert bad.status_code == 400 and "status must be one of" in bad.json()["error"]["message"]
    future = httpx.get(f"{gateway.url}/envelopes", params={"since": "2999-01-01T00:00:00Z"},
                       headers=auth(TOKENS["bob"])).json()
    assert future["records"] == []


def test_cancel_marks_canceled_once(gateway):
    envelope_id = submit(gateway, {"tool": "echo", "arguments": {"text": "stop"}}).json()["id"]
    first = httpx.post(f"{gateway.url}/envelopes/{envelope_id}/cancel", headers=auth(TOKENS["alice"]))
    assert first.status_code == 200 and first.json()["status"] == "canceled"
    second = httpx.post(f"{gateway.url}/envelopes/{envelope_id}/cancel", headers=auth(TOKENS["alice"]))
    assert second.status_code == 409 and second.json()["error"]["code"] == "conflict"
    other = httpx.post(f"{gateway.url}/envelopes/{envelope_id}/cancel", headers=auth(TOKENS["bob"]))
    assert other.status_code == 404


def test_tools_probes_and_metrics(gateway):
    tools = httpx.get(f"{gateway.url}/tools", headers=auth(TOKENS["viewer"])).json()["tools"]
    echo = next(t for t in tools if t["name"] == "echo")
    assert echo["inputSchema"]["required"] == ["text"] and echo["timeoutSeconds"] == 30
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert httpx.get(f"{gateway.url}/readyz").text == "ok"
    submit(gateway, {"tool": "echo", "arguments": {"text": "count me"}})
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'asya_gateway_submitted_total{tool="echo"}' in metrics
    assert 'asya_gateway_requests_total{code="202",route="submit"}' in metrics
