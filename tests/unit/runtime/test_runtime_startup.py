"""Class handlers with ASYA_HANDLER_ARGS, and every start-up error: non-zero exit, one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.require import require

from .client import envelope, run_startup


async def test_class_is_instantiated_once_with_args_over_defaults(start_runtime):
    args = json.dumps({"scale": 3, "extra": [1]})
    _, client = await start_runtime("rt_classes.Model.predict", ASYA_HANDLER_ARGS=args)
    for _ in range(3):
        _, frame = await client.call(envelope({"x": 2}))
        assert frame["outputs"][0]["payload"] == {
            "name": "default", "scale": 3, "extra": [1], "value": 6, "instances": 1,
            "pid": frame["outputs"][0]["payload"]["pid"],
        }


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("asya-runtime: ")
    assert "Traceback" not in stderr
    return lines[0]


STARTUP_ERRORS = [
    # (handler, extra env, exit code, fragments that must appear in the one line)
    ("", {}, 2, ["ASYA_HANDLER is required"]),
    ("nodots", {}, 2, ["ASYA_HANDLER='nodots' is invalid", "module.function"]),
    ("rt_no_such_module.run", {}, 2, ["cannot import handler module 'rt_no_such_module'", "ModuleNotFoundError"]),
    ("rt_payload.missing", {}, 2, ["handler module 'rt_payload' has no attribute 'missing'"]),
    ("rt_classes.Model.not_callable", {}, 2, ["is not callable"]),
    ("rt_classes.Model.nope", {}, 2, ["class 'rt_classes.Model' has no attribute 'nope'"]),
    ("rt_classes.Model", {}, 2, ["names a class"]),
    ("rt_classes.Model.predict", {"ASYA_HANDLER_ARGS": '{"sclae": 2}'}, 2,
     ["ASYA_HANDLER_ARGS", "sclae", "accepted arguments: name, scale, extra"]),
    ("rt_classes.NeedsPath.run", {}, 2, ["ASYA_HANDLER_ARGS", "'path'"]),
    ("rt_classes.Model.predict", {"ASYA_HANDLER_ARGS": "[1]"}, 2, ["ASYA_HANDLER_ARGS", "expected a JSON dict"]),
    ("rt_classes.Model.predict", {"ASYA_HANDLER_ARGS": "{bad"}, 2, ["ASYA_HANDLER_ARGS", "invalid"]),
    ("rt_payload.echo", {"ASYA_HANDLER_ARGS": '{"a": 1}'}, 2, ["is a function"]),
    ("rt_payload.echo", {"ASYA_HANDLER_MODE": "stream"}, 2, ["ASYA_HANDLER_MODE='stream' is invalid"]),
    ("rt_payload.echo", {"ASYA_CONCURRENCY": "zero"}, 2, ["ASYA_CONCURRENCY='zero' is invalid"]),
    ("rt_payload.echo", {"ASYA_CONCURRENCY": "0"}, 2, ["ASYA_CONCURRENCY=0 is invalid"]),
    ("rt_payload.echo", {"ASYA_LOG_LEVEL": "LOUD"}, 2, ["ASYA_LOG_LEVEL='LOUD' is invalid"]),
    ("rt_payload.echo", {"ASYA_SOCKET_PATH": "/proc/asya/x.sock"}, 2,
     ["cannot serve on ASYA_SOCKET_PATH='/proc/asya/x.sock'"]),
    ("rt_import_fails.run", {}, 3,
     ["handler module 'rt_import_fails' failed to import", "ImportError: cannot load native library libfoo.so"]),
    ("rt_missing_dep.run", {}, 3,
     ["handler module 'rt_missing_dep' failed to import", "rt_definitely_not_installed_dep"]),
    ("rt_classes.BrokenInit.run", {}, 3,
     ["rt_classes.BrokenInit(**ASYA_HANDLER_ARGS) raised RuntimeError: weights file missing"]),
]


@pytest.mark.parametrize(
    "handler,env,code,fragments",
    STARTUP_ERRORS,
    ids=[f"{i}-{h or 'unset'}-{c}" for i, (h, _, c, _) in enumerate(STARTUP_ERRORS)],
)
def test_startup_error_exits_non_zero_with_one_clear_line(tmp_path, handler, env, code, fragments):
    result = run_startup(tmp_path, handler, **env)
    assert result.returncode == code, result.stderr
    line = _one_line(result.stderr)
    for fragment in fragments:
        assert fragment in line, line


def test_debug_level_adds_the_traceback_after_the_line(tmp_path):
    result = run_startup(tmp_path, "rt_classes.BrokenInit.run", ASYA_LOG_LEVEL="DEBUG")
    assert result.returncode == 3
    first, *rest = result.stderr.splitlines()
    assert first.startswith("asya-runtime: rt_classes.BrokenInit")
    assert "Traceback (most recent call last)" in "\n".join(rest)
    assert "weights file missing" in rest[-1]


def test_console_script_runs_the_same_entry_point_and_imports_from_cwd(tmp_path):
    script = Path(sys.executable).parent / "asya-runtime"
    require(script.exists(), f"console script {script} is not installed (run `make venv`)")
    (tmp_path / "rt_cwd_module.py").write_text("def handle(payload):\n    return payload\n")
    result = subprocess.run([str(script)], env={"ASYA_HANDLER": "rt_cwd_module.absent", "PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    assert _one_line(result.stderr) == (
        "asya-runtime: handler module 'rt_cwd_module' has no attribute 'absent' (ASYA_HANDLER='rt_cwd_module.absent')"
    )
