"""Routing through real sidecars and runtimes: returns, fan-out, None, generator and envelope-mode rewrites."""

from __future__ import annotations

from asya_common import envelope as env


def test_dict_return_forwards_one_envelope_to_the_next_actor(mesh):
    sent = mesh.send(["double", "add-one"], {"x": 5})
    record = mesh.wait_final(sent["id"])
    assert record["status"] == "succeeded"
    assert record["result"] == {"x": 11}
    assert "branches" not in record
    assert mesh.final_envelope(sent["id"])["route"]["prev"] == ["double", "add-one"]


def test_list_fans_out_with_suffixed_ids_and_parent_id(mesh):
    sent = mesh.send(["fan", "echo"], {"n": 3})
    record = mesh.wait_final(sent["id"])
    ids = [record["id"], *(b["id"] for b in record["branches"])]
    assert ids == [sent["id"], f"{sent['id']}-1", f"{sent['id']}-2"]
    assert [record["result"], *(b["result"] for b in record["branches"])] == [{"item": 0}, {"item": 1}, {"item": 2}]
    child = mesh.final_envelope(f"{sent['id']}-2")
    assert child["parent_id"] == sent["id"]
    assert child["route"]["prev"] == ["fan", "echo"]
    assert "parent_id" not in mesh.final_envelope(sent["id"])


def test_none_ends_the_branch_at_happy_end_with_payload_unchanged(mesh):
    sent = mesh.send(["nothing", "double"], {"x": 1, "keep": "me"})
    record = mesh.wait_final(sent["id"])
    assert record["status"] == "succeeded"
    assert record["result"] == {"x": 1, "keep": "me"}  # double never ran
    assert mesh.final_envelope(sent["id"])["route"]["prev"] == ["nothing"]


def test_generator_set_route_next_sends_the_payload_to_store(mesh):
    sent = mesh.send(["to-store", "double"], {"x": 1})
    record = mesh.wait_final(sent["id"])
    assert record["result"] == {"x": 1, "routed": True, "stored": True}
    final = mesh.final_envelope(sent["id"])
    assert final["route"]["prev"] == ["to-store", "store"]
    assert final["headers"]["x-routed"] == "by-generator"


def test_envelope_mode_may_rewrite_route_next(mesh):
    sent = mesh.send(["reroute", "double"], {"x": 1})
    record = mesh.wait_final(sent["id"])
    assert record["result"] == {"x": 1, "rerouted": True, "stored": True}


def test_envelope_mode_changing_route_prev_is_a_processing_error(mesh):
    sent = mesh.send(["bad-rewrite", "echo"], {"x": 1})
    record = mesh.wait_final(sent["id"])
    assert record["status"] == "failed"
    assert record["error"]["actor"] == "bad-rewrite"
    assert record["error"]["type"] == "RouteError"
    assert "route.prev" in record["error"]["message"]
    assert record["payload"] == {"x": 1}


def test_headers_and_unknown_top_level_keys_survive_three_hops(mesh):
    sent = mesh.send(["double", "add-one", "echo"], {"x": 1},
                     headers={"traceparent": "00-abc-def-01", "x-team": "vision"}, custom={"keep": [1, 2]})
    mesh.wait_final(sent["id"])
    final = mesh.final_envelope(sent["id"])
    assert final["headers"]["traceparent"] == "00-abc-def-01"
    assert final["headers"]["x-team"] == "vision"
    assert final["custom"] == {"keep": [1, 2]}
    assert final["route"]["prev"] == ["double", "add-one", "echo"]
    assert final["route"]["curr"] == env.HAPPY_END


def test_single_actor_route_ends_in_happy_end(mesh):
    envelope = {"id": "single-hop-1", "route": {"prev": [], "curr": "double", "next": []}, "headers": {},
                "payload": {"x": 21}}
    mesh.store.mark_pending(envelope["id"])
    mesh.send_bodies("double", [env.dumps(envelope)])
    assert mesh.wait_final("single-hop-1")["result"] == {"x": 42}


def test_class_handler_gets_handler_args_over_defaults(mesh):
    sent = mesh.send(["greeter"], {"name": "Ada"})
    assert mesh.wait_final(sent["id"])["result"] == {"text": "hej Ada!"}


def test_async_handler_with_concurrency_8_runs_8_calls_at_once(mesh):
    envelopes = [env.make_envelope(["async-sleepy"], {"sleep": 1.5}) for _ in range(8)]
    for envelope in envelopes:
        mesh.store.mark_pending(envelope["id"])
    mesh.send_bodies("async-sleepy", [env.dumps(e) for e in envelopes])  # one batch: all 8 queued at once
    results = [mesh.wait_final(e["id"])["result"]["max_concurrent_seen"] for e in envelopes]
    assert max(results) == 8


def test_large_unicode_and_deeply_nested_payloads_round_trip_exactly(mesh):
    nested: dict = {"leaf": "ünïcødé ✓ 日本語 🚀"}
    for depth in range(200):
        nested = {"level": depth, "child": nested}
    big = {"blob": "é" * (5 * 1024 * 1024), "nested": nested, "emoji": "👩‍🔬" * 1000}  # ~10 MB of UTF-8
    sent = mesh.send(["echo", "echo"], big)
    record = mesh.wait_final(sent["id"], timeout=60)
    assert record["status"] == "succeeded"
    assert record["result"] == big
