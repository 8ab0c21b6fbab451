"""Fix a handler and replay, as a user would: `asya dev --reload`, `asya dev restart ACTOR`, `asya replay --wait`.

A handler with a bug fails an envelope; the file is edited; the runtime restarts (by itself with
``--reload``, on request with ``asya dev restart``); the replayed envelope runs the new code. The old
process's traceback shows the line it ran, not the edited file's. Stopping the mesh logs no traceback,
and a requested restart is never shown as a crash.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from tests.support.mesh import Mesh
from tests.support.require import wait_for

BUGGY = '''def run(payload):
    raise ValueError("bug in version one")
'''
FIXED = '''def run(payload):
    # version two: this comment now sits where the raise was
    return {"fixed": payload["n"] * 2}
'''
VALUES = {"name": "fixme", "handler": "fixme_handler.run",
          "resiliency": {"policies": {"default": {"maxAttempts": 1}}}}


def asya(*args, state, timeout=120):
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=timeout)


def _start(tmp_path, dev_args=()) -> tuple[Mesh, object]:
    mesh = Mesh(tmp_path, [VALUES], dev_args=list(dev_args))
    handler = mesh.values_dir / "fixme_handler.py"
    handler.write_text(BUGGY)
    return mesh.start(timeout=90), handler


def _edit(handler, text: str) -> None:
    handler.write_text(text)
    later = time.time() + 2  # a coarse-mtime filesystem still sees a change
    os.utime(handler, (later, later))


def _fail_once(mesh) -> dict:
    sent = asya("send", "--route", "fixme", "--payload", '{"n": 21}', "--wait", state=mesh.state)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    return json.loads(sent.stdout)


def _replay_succeeds(mesh, envelope_id: str) -> None:
    replayed = asya("replay", envelope_id, "--wait", "--timeout", "60", state=mesh.state)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    record = json.loads(replayed.stdout.splitlines()[-1])
    assert record["status"] == "succeeded" and record["result"] == {"fixed": 42}
    listed = asya("status", "--json", "--actor", "fixme", state=mesh.state)
    row = next(json.loads(line) for line in listed.stdout.splitlines() if json.loads(line)["id"] == envelope_id)
    assert row["previous_failures"][0]["message"] == "bug in version one"  # the earlier run is kept
    one = json.loads(asya("status", envelope_id, state=mesh.state).stdout)
    assert one["previous_failures"][0]["type"] == "ValueError" and [h["actor"] for h in one["hops"]][:1] == ["fixme"]


def _runtime_pid(mesh) -> int:
    return mesh.pids()["fixme"]["runtime"]


def _stop_cleanly(mesh, broken_edit: bool = False) -> None:
    assert mesh.stop() == 0
    for name in ("fixme", "happy-end", "error-end"):
        for role in ("runtime", "sidecar"):
            bad = [line for line in mesh.log(name, role).splitlines()  # the handler's own error is expected
                   if "Traceback" in line and not json.loads(line).get("msg", "").startswith("handler raised")]
            assert not bad, f"{name} {role} logged a traceback: {bad[0][:300]} ... {bad[0][-1500:]}"
    crashes = re.findall(r"crashed \(exit (\d+)\)", mesh.output())
    assert set(crashes) <= ({"3"} if broken_edit else set()), mesh.output()  # 3 = the half-typed edit's import
    late = asya("send", "--route", "fixme", "--payload", "{}", state=mesh.state)  # the mesh is gone: say so
    assert late.returncode == 2 and "no mesh is running" in late.stderr, late.stderr


def test_reload_restarts_the_runtime_when_the_handler_file_changes(tmp_path):
    mesh, handler = _start(tmp_path, ["--reload"])
    try:
        failed = _fail_once(mesh)
        before = _runtime_pid(mesh)
        _edit(handler, "def run(payload:\n")  # a half-typed edit: the import fails, the mesh stays up
        wait_for(lambda: "SyntaxError" in mesh.log("fixme", "runtime"), timeout=30, what="the broken import")
        assert mesh.process.poll() is None, mesh.output()
        _edit(handler, FIXED)
        wait_for(lambda: _runtime_pid(mesh) != before, timeout=30, what="the runtime to restart after the edit")
        _replay_succeeds(mesh, failed["id"])
    finally:
        _stop_cleanly(mesh, broken_edit=True)


def test_restart_on_request_and_tracebacks_show_the_code_that_ran(tmp_path):
    mesh, handler = _start(tmp_path)
    try:
        _edit(handler, FIXED)  # no --reload: the running process still has version one
        failed = _fail_once(mesh)
        traceback = failed["error"]["traceback"]
        assert 'raise ValueError("bug in version one")' in traceback, traceback
        assert "version two" not in traceback, traceback
        before = _runtime_pid(mesh)
        restarted = asya("dev", "restart", "fixme", state=mesh.state)
        assert restarted.returncode == 0, restarted.stderr
        assert f"restarted fixme: runtime pid {before} -> " in restarted.stdout
        _replay_succeeds(mesh, failed["id"])
        unknown = asya("dev", "restart", "nope", state=mesh.state)
        assert unknown.returncode == 2 and "no actor 'nope'" in unknown.stderr
    finally:
        _stop_cleanly(mesh)
