"""`asya send` with input from files: `--payload @file.json`, `--payload -` (stdin), `--batch file.jsonl`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.mesh import Mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    running = Mesh(tmp_path_factory.mktemp("send"), [
        {"name": "double", "handler": "mesh_handlers.double"},
        {"name": "bad-rewrite", "handler": "mesh_handlers.rewrite_prev", "handlerMode": "envelope",
         "resiliency": {"policies": {"default": {"maxAttempts": 1}}}}]).start(timeout=90)
    yield running
    running.stop()


def asya(mesh, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *map(str, args), "--state-dir", str(mesh.state)],
                          input=stdin, capture_output=True, text=True, timeout=120, cwd=mesh.tmp)


def test_payload_from_a_file_and_from_stdin(mesh):
    (mesh.tmp / "scan.json").write_text('{\n  "x": 21\n}\n')
    from_file = asya(mesh, "send", "--route", "double", "--payload", "@scan.json", "--wait")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["result"] == {"x": 42}
    from_stdin = asya(mesh, "send", "--route", "double", "--payload", "-", "--wait", stdin='{"x": 5}')
    assert from_stdin.returncode == 0 and json.loads(from_stdin.stdout)["result"] == {"x": 10}


def test_bad_input_is_refused_naming_file_line_and_column(mesh):
    (mesh.tmp / "broken.json").write_text('{\n  "x": 1,\n}\n')
    broken = asya(mesh, "send", "--route", "double", "--payload", "@broken.json")
    assert broken.returncode == 2 and "--payload file broken.json is not JSON" in broken.stderr
    assert "line 3 column 1" in broken.stderr
    missing = asya(mesh, "send", "--route", "double", "--payload", "@nope.json")
    assert missing.returncode == 2 and "cannot read --payload file nope.json" in missing.stderr
    (mesh.tmp / "mixed.jsonl").write_text('{"x": 1}\n{"x": \n')
    mixed = asya(mesh, "send", "--route", "double", "--batch", "mixed.jsonl")
    assert mixed.returncode == 2 and "line 2 of --batch file mixed.jsonl is not JSON" in mixed.stderr
    assert mixed.stdout == ""  # nothing was sent
    both = asya(mesh, "send", "--route", "double", "--payload", "1", "--batch", "mixed.jsonl")
    assert both.returncode == 2 and "exactly one of --payload" in both.stderr


def test_batch_prints_one_id_per_line_and_wait_waits_for_all(mesh):
    (mesh.tmp / "items.jsonl").write_text("".join(json.dumps({"x": i}) + "\n" for i in range(5)) + "\n")
    sent = asya(mesh, "send", "--route", "double", "--batch", "items.jsonl")
    assert sent.returncode == 0, sent.stderr
    ids = sent.stdout.split()
    assert len(ids) == 5 and len(set(ids)) == 5
    results = sorted(mesh.wait_final(i)["result"]["x"] for i in ids)
    assert results == [0, 2, 4, 6, 8]
    waited = asya(mesh, "send", "--route", "double", "--batch", "-", "--wait", stdin='{"x": 100}\n{"x": 200}\n')
    assert waited.returncode == 0, waited.stderr
    assert [json.loads(line)["result"] for line in waited.stdout.splitlines()] == [{"x": 200}, {"x": 400}]
    failing = asya(mesh, "send", "--route", "bad-rewrite", "--batch", "-", "--wait", stdin="1\n2\n")
    assert failing.returncode == 1 and [json.loads(line)["status"] for line in failing.stdout.splitlines()] == [
        "failed", "failed"]
