"""One log layout, the `asya dev` table, and the small things a first day trips over.

Runtime and sidecar logs are JSON lines with the same ``ts``/``level``/``msg`` keys and time format; a
handler's ``print()`` becomes a record with the envelope id; a handler exception is logged at error level.
The `asya dev` table shows each sidecar's metrics port (which serves /metrics) and never ``up`` for an
actor whose import failed; "1 actor"; names that are refused say what is allowed and suggest the fix.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from tests.support.mesh import Mesh
from tests.support.require import wait_for

HANDLER = '''import logging

def talk(payload):
    print(f"printing from the handler {payload['n']}")
    logging.getLogger("mine").warning("a warning of mine")
    if payload.get("fail"):
        raise KeyError("no such thing")
    return payload
'''
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def asya(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_one_json_layout_print_as_records_and_errors_at_error_level(tmp_path):
    mesh = Mesh(tmp_path, [{"name": "talker", "handler": "talk_handler.talk",
                            "resiliency": {"policies": {"default": {"maxAttempts": 1}}}}])
    (mesh.values_dir / "talk_handler.py").write_text(HANDLER)
    mesh.start(timeout=90)
    try:
        ok = mesh.send(["talker"], {"n": 7})
        bad = mesh.send(["talker"], {"n": 8, "fail": True})
        mesh.wait_final(ok["id"]), mesh.wait_final(bad["id"])
        row = re.compile(r"^talker\s+up\s+up\s+:(\d+)", re.M)
        output = wait_for(lambda: mesh.output() if row.search(mesh.output()) else None,
                          timeout=30, what="the table row of talker with its metrics port")
        port = int(row.search(output).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b'asya_messages_processed_total{actor="talker"' in answer.read()
    finally:
        mesh.stop()
    assert output.splitlines()[0].startswith("asya dev: 1 actor + crew")
    runtime, sidecar = _records(mesh.log("talker", "runtime")), _records(mesh.log("talker", "sidecar"))
    for line in runtime + sidecar:
        assert {"ts", "level", "msg", "actor"} <= set(line), line
        assert TS.match(line["ts"]), line["ts"]
        assert line["level"] in ("debug", "info", "warning", "error")
    printed = [r for r in runtime if r["msg"] == "printing from the handler 7"]
    assert printed and printed[0]["envelope_id"] == ok["id"] and printed[0]["level"] == "info"
    mine = [r for r in runtime if r["msg"] == "a warning of mine" and r.get("envelope_id") == bad["id"]]
    assert mine and mine[0]["level"] == "warning"
    raised = [r for r in runtime if r.get("envelope_id") == bad["id"] and r["level"] == "error"]
    assert raised and "KeyError" in raised[0]["msg"] and "no such thing" in raised[0]["traceback"]
    assert any(r.get("envelope_id") == bad["id"] for r in sidecar)  # both sides searchable by id


def test_an_actor_whose_import_failed_is_never_shown_up(tmp_path):
    (tmp_path / "broken_handler.py").write_text("import no_such_module_here\n\ndef run(p):\n    return p\n")
    (tmp_path / "broken.yaml").write_text("name: broken\nhandler: broken_handler.run\n")
    done = asya("dev", "--state-dir", tmp_path / "state", tmp_path / "broken.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broken runtime cannot start (exit 3)" in done.stdout and "no_such_module_here" in done.stdout
    assert not re.search(r"^broken\s+up", done.stdout, re.M), done.stdout


def test_names_say_what_is_allowed_and_suggest_the_fix(tmp_path):
    (tmp_path / "clean.yaml").write_text("name: clean_text\nhandler: text.clean\n")
    values = asya("dev", "--state-dir", tmp_path / "state", tmp_path / "clean.yaml", cwd=tmp_path)
    assert values.returncode == 2
    assert "lowercase letters, digits and '-'" in values.stderr and "got 'clean_text'" in values.stderr
    assert "try 'clean-text'" in values.stderr
    route = asya("send", "--route", "Clean_Text", "--payload", "1", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert route.returncode == 2 and "try 'clean-text'" in route.stderr


def test_sending_while_no_mesh_runs_says_so(tmp_path):
    done = asya("send", "--route", "judge", "--payload", "{}", "--state-dir", tmp_path / "nothing-here", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "no mesh is running" in done.stderr or "does not exist" in done.stderr, done.stderr
