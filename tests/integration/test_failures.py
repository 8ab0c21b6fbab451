"""Failures: retries with backoff, actorTimeout, malformed bodies and route mismatches."""

from __future__ import annotations

import json
import uuid

from asya_common import envelope as env


def _attempt_times(log_path, key):
    return [json.loads(line)["at"] for line in log_path.read_text().splitlines() if json.loads(line)["key"] == key]


def test_handler_failing_twice_succeeds_on_third_attempt_with_backoff(mesh, tmp_path):
    log = tmp_path / "attempts.jsonl"
    key = uuid.uuid4().hex
    sent = mesh.send(["flaky3"], {"key": key, "fail_times": 2, "log": str(log)})
    record = mesh.wait_final(sent["id"])
    assert record["status"] == "succeeded"
    assert record["result"]["attempts"] == 3
    times = _attempt_times(log, key)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # initialInterval 300ms, exponential, jitter +/-20%: >= 240ms then >= 480ms
    assert gaps[0] >= 0.24 and gaps[1] >= 0.48, gaps
    final = mesh.final_envelope(sent["id"])
    assert not any(h.startswith("x-asya-attempt") for h in final["headers"])  # attempt headers do not travel on


def test_handler_failing_twice_with_two_attempts_ends_in_error_end_with_both_errors(mesh, tmp_path):
    log = tmp_path / "attempts.jsonl"
    key = uuid.uuid4().hex
    sent = mesh.send(["flaky2", "echo"], {"key": key, "fail_times": 2, "log": str(log)})
    record = mesh.wait_final(sent["id"])
    assert record["status"] == "failed"
    error = record["error"]
    assert error["actor"] == "flaky2"
    assert error["type"] == "RuntimeError"
    assert error["message"] == f"transient failure 2 for {key}"
    # the traceback starts in the user's code, not in the runtime's plumbing
    assert error["traceback"].splitlines()[1].strip().startswith("File") and "mesh_handlers.py" in \
        error["traceback"].splitlines()[1]
    assert [(a["attempt"], a["message"]) for a in error["attempts"]] == [
        (1, f"transient failure 1 for {key}"), (2, f"transient failure 2 for {key}")]
    assert record["payload"]["key"] == key  # original payload kept for replay
    assert len(_attempt_times(log, key)) == 2


def test_handler_past_actor_timeout_is_abandoned_and_runtime_restarted(mesh):
    pid_before = mesh.pids()["sleepy"]["runtime"]
    slow = mesh.send(["sleepy"], {"sleep": 30})
    record = mesh.wait_final(slow["id"], timeout=30)
    assert record["status"] == "failed"
    assert record["error"]["type"] == "ActorTimeout"
    quick = mesh.send(["sleepy"], {"sleep": 0})
    result = mesh.wait_final(quick["id"], timeout=30)
    assert result["status"] == "succeeded"
    assert result["result"]["pid"] != pid_before  # served by a fresh runtime process


def _bad_bodies(actor_elsewhere):
    no_id = json.dumps({"route": {"prev": [], "curr": "echo", "next": []}, "payload": 1}).encode()
    no_route = json.dumps({"id": "no-route-" + uuid.uuid4().hex, "payload": 1}).encode()
    return {
        "not json": b"{this is not json",
        "not utf-8": b"\xff\xfe\x00garbage",
        "no id": no_id,
        "no route": no_route,
        "other actor": env.dumps(actor_elsewhere),
    }


def test_malformed_bodies_and_route_mismatch_end_in_error_end_and_sidecar_keeps_going(mesh):
    elsewhere = env.make_envelope(["double"], {"x": 1})
    bodies = _bad_bodies(elsewhere)
    before = {r[0] for r in mesh.store._conn.execute("SELECT id FROM records WHERE status='failed'")}
    mesh.send_bodies("echo", list(bodies.values()))
    good = mesh.send(["echo"], {"still": "working"})
    assert mesh.wait_final(good["id"])["result"] == {"still": "working"}
    mismatch = mesh.wait_final(elsewhere["id"])
    assert mismatch["error"]["type"] == "RouteMismatch"
    assert mismatch["payload"] == {"x": 1}

    def new_failures():
        rows = mesh.store._conn.execute("SELECT id, error, envelope FROM records WHERE status='failed'").fetchall()
        return [(json.loads(e), json.loads(v)) for i, e, v in rows if i not in before]

    import time
    deadline = time.monotonic() + 20
    while len(new_failures()) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    failures = new_failures()
    malformed = [(e, v) for e, v in failures if e["type"] == "MalformedEnvelope"]
    assert len(malformed) == 4
    kept = {env.raw_body(v) for _, v in malformed}
    assert kept == {bodies["not json"], bodies["not utf-8"], bodies["no id"], bodies["no route"]}
    reasons = " | ".join(e["message"] for e, _ in malformed)
    assert "not JSON" in reasons and "not UTF-8" in reasons and "'id'" in reasons and "'route'" in reasons
    assert all(e["actor"] == "echo" for e, _ in malformed)


def test_lease_is_extended_while_a_long_handler_runs(mesh, tmp_path):
    """The mesh leases for 3 s; a 7 s call must not be redelivered to a second consumer meanwhile."""
    log = tmp_path / "calls.log"
    sent = mesh.send(["long"], {"n": 1, "log": str(log), "sleep": 7})
    assert mesh.wait_final(sent["id"], timeout=60)["status"] == "succeeded"
    assert log.read_text().split() == ["1"]
