"""The `asya` command as a user types it: send --wait, status, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml


def asya(*args, state=None, timeout=120):
    cmd = [sys.executable, "-m", "asya_cli.main", *args]
    if state is not None:
        cmd += ["--state-dir", str(state)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_send_wait_prints_the_final_record_as_json(mesh):
    done = asya("send", "--route", "double,add-one", "--payload", '{"x": 4}', "--header", "x-team=vision",
                "--wait", "--timeout", "30", state=mesh.state)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded" and record["result"] == {"x": 9} and record["id"]
    assert mesh.final_envelope(record["id"])["headers"]["x-team"] == "vision"


def test_send_wait_on_a_failure_exits_1_with_the_error(mesh):
    done = asya("send", "--route", "bad-rewrite", "--payload", '{"x": 1}', "--wait", state=mesh.state)
    assert done.returncode == 1
    record = json.loads(done.stdout)
    assert record["status"] == "failed" and record["error"]["type"] == "RouteError"


def test_status_prints_the_record_and_pending_before_processing(mesh):
    sent = asya("send", "--route", "echo", "--payload", '"hi"', state=mesh.state)
    envelope_id = sent.stdout.strip()
    mesh.wait_final(envelope_id)
    status = asya("status", envelope_id, state=mesh.state)
    assert json.loads(status.stdout)["result"] == "hi"
    mesh.store.mark_pending("queued-but-not-sent")
    assert json.loads(asya("status", "queued-but-not-sent", state=mesh.state).stdout)["status"] == "pending"


def test_status_of_an_unknown_id_is_a_clear_error(mesh):
    done = asya("status", "no-such-id", state=mesh.state)
    assert done.returncode == 2 and "no envelope with id 'no-such-id'" in done.stderr


def test_send_rejects_bad_json_and_terminal_actors(mesh):
    bad = asya("send", "--route", "echo", "--payload", "{x", state=mesh.state)
    assert bad.returncode == 2 and "--payload is not JSON" in bad.stderr
    terminal = asya("send", "--route", "echo,happy-end", "--payload", "1", state=mesh.state)
    assert terminal.returncode == 2 and "terminal actor" in terminal.stderr


def test_send_to_an_unknown_actor_names_it(mesh):
    done = asya("send", "--route", "no-such-actor", "--payload", "1", state=mesh.state)
    assert done.returncode == 2 and "no-such-actor" in done.stderr


def test_dev_with_a_values_file_missing_handler_fails_naming_it(tmp_path):
    values = tmp_path / "a.yaml"
    values.write_text(yaml.safe_dump({"name": "a"}))
    done = asya("dev", str(values), state=tmp_path / "state")
    assert done.returncode == 2
    assert "a.yaml" in done.stderr and "handler" in done.stderr


def test_dev_with_an_unimportable_handler_exits_with_one_clear_line(tmp_path):
    values = tmp_path / "a.yaml"
    values.write_text(yaml.safe_dump({"name": "a", "handler": "no_such_module.fn"}))
    done = asya("dev", str(values), state=tmp_path / "state")
    assert done.returncode == 1
    assert "a runtime cannot start (exit 2)" in done.stdout or "a runtime cannot start (exit 3)" in done.stdout
    assert "no_such_module" in done.stdout


def test_dev_rejects_a_typo_in_a_values_key_like_helm_would(tmp_path):
    values = tmp_path / "a.yaml"
    values.write_text(yaml.safe_dump({"name": "a", "handler": "m.f", "resilency": {"actorTimeout": "3s"}}))
    done = asya("dev", str(values), state=tmp_path / "state")
    assert done.returncode == 2
    assert "'resilency' was unexpected" in done.stderr and "a.yaml" in done.stderr


def test_dev_runs_the_teams_values_files_unchanged(tmp_path):
    """The example actors are valid chart values: asya dev and helm read the same files."""
    from asya_cli.values import load_actor
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[2] / "examples" / "digits" / "actors").glob("*.yaml"))
    specs = [load_actor(p) for p in examples]
    classify = next(s for s in specs if s.name == "classify")
    assert classify.runtime_env["ASYA_HANDLER"] == "classify.DigitClassifier.predict"
    assert json.loads(classify.runtime_env["ASYA_HANDLER_ARGS"]) == {"C": 0.5}
    assert classify.sidecar_env["ASYA_ACTOR_TIMEOUT"] == "30s"
    assert classify.sidecar_env["ASYA_RETRY_MAX_ATTEMPTS"] == "2"


def test_replay_sends_a_failed_envelope_back_with_fresh_attempts(mesh, tmp_path):
    import uuid

    key = uuid.uuid4().hex
    payload = {"key": key, "fail_times": 2, "log": str(tmp_path / "log.jsonl")}
    sent = asya("send", "--route", "flaky2,add-one", "--payload", json.dumps({**payload, "x": 1}), "--wait",
                state=mesh.state)
    first = json.loads(sent.stdout)
    assert first["status"] == "failed"
    replayed = asya("replay", first["id"], state=mesh.state)
    assert replayed.returncode == 0 and "replayed to flaky2" in replayed.stdout
    record = mesh.wait_final(first["id"])
    assert record["status"] == "succeeded"
    assert record["result"]["x"] == 2 and record["result"]["attempts"] == 3  # continued on to add-one


def test_replay_refuses_malformed_bodies_and_unfinished_envelopes(mesh):
    mesh.send_bodies("echo", [b"{definitely not json"])
    import time

    deadline = time.monotonic() + 20
    row = None
    while row is None and time.monotonic() < deadline:
        row = mesh.store._conn.execute(
            "SELECT id FROM records WHERE error LIKE '%MalformedEnvelope%' ORDER BY updated_at DESC").fetchone()
        time.sleep(0.1)
    done = asya("replay", row[0], state=mesh.state)
    assert done.returncode == 2 and "never a valid envelope" in done.stderr
    mesh.store.mark_pending("still-pending")
    assert "only failed envelopes" in asya("replay", "still-pending", state=mesh.state).stderr
