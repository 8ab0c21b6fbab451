"""Issue 10, items 2, 6 and 8: the ``asya`` command refuses what it cannot do, in one line, and loses nothing.

Before the fix: ``asya replay`` moved the record back to ``pending`` before publishing (a failed
publish left a failed envelope looking like it was on its way) and printed a traceback; a corrupt
status store, invalid Unicode or NaN in ``--payload`` gave tracebacks (or NaN was published); a
mistyped ``--state-dir`` silently created a new, empty queue database; ``actorTimeout: 0`` and
reserved actor names (``happy-end``, ``x-dlq``) were accepted; ``--route x-dlq`` was published.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asya_common import envelope as env
from asya_common.status_store import StatusStore


def asya(*args: str | bytes, env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env_extra or {})}
    environ.pop("ASYA_TRANSPORT", None)
    cmd = [sys.executable.encode(), b"-m", b"asya_cli.main",
           *(a if isinstance(a, bytes) else a.encode() for a in args)]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=environ)


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    err = done.stderr.decode(errors="replace").strip()
    assert done.returncode == 2, (done.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def fake_mesh_dir(tmp_path):
    """A state dir whose dev.json names a live pid (this test), so verbs go as far as parsing their input."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "dev.json").write_text(json.dumps({"transport": {"ASYA_TRANSPORT": "sqlite"}, "actors": ["a"],
                                                "pid": os.getpid()}))
    return state


@pytest.mark.parametrize("payload, words", [
    (b'"\xff\xfe"', ["surrogate"]),
    (b'{"x": NaN}', ["NaN"]),
    (b'[1e999]', ["out of range"]),
    (b"[" * 100_000, ["nested too deeply"]),
], ids=["surrogate", "nan", "1e999", "deep"])
def test_send_refuses_payloads_that_are_not_strict_json(fake_mesh_dir, payload, words):
    done = asya("send", "--route", "a", "--payload", payload, "--state-dir", str(fake_mesh_dir))
    one_line_error(done, *words)


@pytest.mark.parametrize("route", ["x-dlq", "a,b-dlq"])
def test_send_never_targets_a_dlq(fake_mesh_dir, route):
    one_line_error(asya("send", "--route", route, "--payload", "1", "--state-dir", str(fake_mesh_dir)),
                   "dead-letter queue")


def test_a_state_dir_that_does_not_exist_is_an_error_not_a_new_mesh(tmp_path):
    missing = tmp_path / "typo"
    one_line_error(asya("dlq", "list", "--state-dir", str(missing)), str(missing), "does not exist")
    assert not missing.exists()


def test_a_corrupt_status_store_is_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.sqlite3").write_bytes(b"this is not a database" * 100)
    one_line_error(asya("status", "abc", "--state-dir", str(state)), "is not a database")


def test_replay_changes_nothing_when_the_publish_fails(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    store = StatusStore(state / "status.sqlite3")
    failed = env.to_error_end(env.make_envelope(["a"], {"x": 1}, envelope_id="r1"),
                              {"actor": "a", "type": "ValueError", "message": "boom", "attempts": []})
    store.record_final(failed, "failed", actor="error-end", error=failed["headers"][env.H_ERROR])
    before = store.get("r1")
    # the dev mesh's queue database has no queue for actor "a": the publish fails (QueueNotFound)
    (state / "dev.json").write_text(json.dumps({"transport": {"ASYA_TRANSPORT": "sqlite"}}))
    done = asya("replay", "r1", "--state-dir", str(state))
    one_line_error(done, "cannot publish", "unchanged")
    after = store.get("r1")
    assert after["status"] == "failed" and after["error"] == before["error"]


def _values(tmp_path: Path, name: str, **extra) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "handler": "mod.fn", **extra}))
    return path


@pytest.mark.parametrize("name, words", [
    ("happy-end", ["reserved"]), ("error-end", ["reserved"]), ("judge-dlq", ["dead-letter queue"]),
])
def test_dev_refuses_reserved_actor_names(tmp_path, name, words):
    done = asya("dev", str(_values(tmp_path, name)), "--state-dir", str(tmp_path / "state"), timeout=60)
    one_line_error(done, name, *words)


@pytest.mark.parametrize("timeout", ["0", "0s", 0, "0ms"])
def test_dev_refuses_an_actor_timeout_of_zero(tmp_path, timeout):
    path = _values(tmp_path, "judge", resiliency={"actorTimeout": timeout})
    done = asya("dev", str(path), "--state-dir", str(tmp_path / "state"), timeout=60)
    one_line_error(done, "actorTimeout")


@pytest.mark.parametrize("value", ["0", "nan", "inf", "1e20s"])
def test_the_sidecar_refuses_nonsensical_durations(value):
    environ = {**os.environ, "ASYA_ACTOR_NAME": "a", "ASYA_ACTOR_TIMEOUT": value}
    done = subprocess.run([sys.executable, "-m", "asya_sidecar"], capture_output=True, text=True, env=environ,
                          timeout=60)
    assert done.returncode == 2 and "ASYA_ACTOR_TIMEOUT" in done.stderr, done.stderr


def test_dlq_show_of_a_deeply_nested_dead_letter_is_one_line_per_message(fake_mesh_dir):
    import asyncio

    from asya_common.transport import QueueSpec, TransportSettings, create_transport

    async def park() -> None:
        settings = TransportSettings(sqlite_path=str(fake_mesh_dir / "queues.sqlite3"))
        async with create_transport(settings) as transport:
            await transport.ensure_queue(QueueSpec("asya-a", "asya-a-dlq"))
            await transport.send("asya-a-dlq", b'{"id": "deep", "route": {"curr": "a"}, "payload": '
                                 + b"[" * 100_000 + b"]" * 100_000 + b"}")

    asyncio.run(park())
    done = asya("dlq", "show", "a", "--state-dir", str(fake_mesh_dir))
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1 and "nested too deeply" in json.loads(lines[0])["decode_error"]
