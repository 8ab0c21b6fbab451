"""PAUSE end to end on a real dev mesh: park, restart every process, resume through the CLI, complete.

Also: the CLI's errors (unknown id, bad JSON, schema violation, double resume), envelope-mode pause,
and a timed-out pause failing into error-end with PauseTimeout, replayable with ``asya replay``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from asya_common import envelope as env
from asya_common.status import FAILED, PAUSED, SUCCEEDED, is_settled, open_store
from tests.support.mesh import Mesh
from tests.support.require import wait_for


def policy():
    return {"actorTimeout": "20s", "policies": {"default": {"maxAttempts": 1, "backoff": "constant",
                                                              "initialInterval": "100ms", "maxInterval": "100ms"}}}


ACTORS = [
    {"name": "review", "handler": "pause_handlers.review", "resiliency": policy()},
    {"name": "review-quick", "handler": "pause_handlers.review_with_timeout", "resiliency": policy()},
    {"name": "review-env", "handler": "pause_handlers.review_envelope", "handlerMode": "envelope",
     "resiliency": policy()},
    {"name": "review-fan", "handler": "pause_handlers.pause_and_fan_out", "resiliency": policy()},
    {"name": "publish", "handler": "pause_handlers.publish", "resiliency": policy()},
]


def asya(mesh: Mesh, *args: str, store: str | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
    where = ["--store", store] if store else []
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *args, "--state-dir", str(mesh.state), *where],
                          capture_output=True, text=True, timeout=120, env=environ, cwd=mesh.tmp)


def wait_paused(mesh: Mesh, envelope_id: str, store=None) -> dict:
    store = store or mesh.store
    return wait_for(lambda: (r := store.get(envelope_id)) and r["status"] == PAUSED and r,
                    60, 0.05, f"{envelope_id} paused")


def wait_final(store, envelope_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (r := store.tree(envelope_id)) and is_settled(r) and r, timeout, 0.05,
                    f"{envelope_id} final")


def kill_everything(mesh: Mesh) -> None:
    """SIGKILL every process of the mesh (no graceful shutdown), and wait until they are gone."""
    pids = [pid for roles in mesh.pids().values() for pid in roles.values()] + [mesh.process.pid]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    mesh.process.wait(30)

    def gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as stat:  # a zombie child of the killed supervisor is gone too
                    if stat.read().split()[2] != "Z":
                        return False
            except (ProcessLookupError, FileNotFoundError):
                continue
        return True

    wait_for(gone, 30, 0.1, "every mesh process to exit")
    mesh.out.close()
    if mesh._store is not None:
        mesh._store.close()
        mesh._store = None


@pytest.fixture
def mesh(tmp_path):
    running = Mesh(tmp_path, ACTORS, env={"ASYA_PAUSE_EXPIRY_INTERVAL": "300ms"}).start()
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def status_db(request):
    """Where the whole mesh (sidecars, crew, gateway) keeps its status store: the dev default, or PostgreSQL."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_pause_survives_a_restart_of_every_process_and_resumes_with_the_input(tmp_path, status_db):
    mesh_env = {"ASYA_PAUSE_EXPIRY_INTERVAL": "300ms", **({"ASYA_STATUS_DB": status_db} if status_db else {})}
    mesh = Mesh(tmp_path, ACTORS, env=mesh_env).start()
    store = open_store(status_db) if status_db else mesh.store
    try:
        sent = env.make_envelope(["review", "publish"], {"doc": "contract-7"})
        store.create(sent)
        mesh.send_bodies("review", [env.dumps(sent)])
        wait_paused(mesh, sent["id"], store)
    except BaseException:
        mesh.stop()
        raise
    kinds = [e.kind for e in store.events(sent["id"])]
    assert kinds[-2:] == ["fly", "paused"], kinds
    listing = asya(mesh, "paused", "list", "--json", store=status_db)
    assert listing.returncode == 0, listing.stderr
    [row] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert row["id"] == sent["id"] and row["actor"] == "review" and row["next"] == "publish"
    assert row["prompt"] == "Approve this?"

    kill_everything(mesh)
    restarted = Mesh(tmp_path, ACTORS, env=mesh_env).start()
    store = open_store(status_db) if status_db else restarted.store
    try:
        assert store.get(sent["id"])["status"] == PAUSED  # nothing re-ran it, nothing lost it
        shown = asya(restarted, "paused", "show", sent["id"], store=status_db)
        assert shown.returncode == 0 and json.loads(shown.stdout)["payload"] == {"doc": "contract-7"}

        bad_json = asya(restarted, "paused", "resume", sent["id"], "--input", "{approved: yes}", store=status_db)
        assert bad_json.returncode == 2 and "--input is not JSON" in bad_json.stderr
        invalid = asya(restarted, "paused", "resume", sent["id"], "--input", '{"approved": "yes"}', store=status_db)
        assert invalid.returncode == 2
        assert "still paused" in invalid.stderr and "$.approved: 'yes' is not of type 'boolean'" in invalid.stderr
        unknown = asya(restarted, "paused", "resume", "no-such-id", "--input", '{"approved": true}', store=status_db)
        assert unknown.returncode == 2 and "no paused envelope with id 'no-such-id'" in unknown.stderr
        assert store.get(sent["id"])["status"] == PAUSED

        ok = asya(restarted, "paused", "resume", sent["id"], "--input", '{"approved": true, "note": "fine"}',
                  store=status_db)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["resumed_to"] == "publish"
        again = asya(restarted, "paused", "resume", sent["id"], "--input", '{"approved": false}', store=status_db)
        assert again.returncode == 2 and "already resumed" in again.stderr

        record = wait_final(store, sent["id"])
        assert record["status"] == SUCCEEDED
        assert record["result"] == {"doc": "contract-7", "review": {"approved": True, "note": "fine"},
                                    "published": True}
        assert record["paused_seconds"] > 0
        kinds = [e.kind for e in store.events(sent["id"])]
        assert kinds[-3:] == ["resumed", "running", "succeeded"], kinds
    finally:
        restarted.stop()


def test_envelope_mode_handler_pauses_with_the_header(mesh):
    sent = mesh.send(["review-env", "publish"], {"doc": 2})
    wait_paused(mesh, sent["id"])
    assert mesh.store.get_pause(sent["id"])["spec"]["prompt"] == "Envelope-mode approval?"
    ok = asya(mesh, "paused", "resume", sent["id"], "--input", '{"approved": false}')
    assert ok.returncode == 0, ok.stderr
    record = mesh.wait_final(sent["id"], 60)
    assert record["status"] == SUCCEEDED and record["result"]["published"] is False


def test_expired_pause_fails_with_pause_timeout_and_replay_asks_again(mesh):
    sent = mesh.send(["review-quick", "publish"], {"doc": 3})
    record = mesh.wait_final(sent["id"], 60)  # the sidecars' expirer ends it after ~1 s
    assert record["status"] == FAILED
    assert record["error"]["type"] == "PauseTimeout" and record["error"]["actor"] == "review-quick"
    assert record["payload"] == {"doc": 3}
    replay = asya(mesh, "replay", sent["id"])
    assert replay.returncode == 0, replay.stderr + replay.stdout
    wait_for(lambda: [e.kind for e in mesh.store.events(sent["id"])].count("paused") == 2, 60, 0.05,
             "the replayed envelope to pause again")
    assert mesh.store.get_pause(sent["id"])["actor"] == "review-quick"


def test_a_pause_with_fan_out_is_refused_into_error_end(mesh):
    sent = mesh.send(["review-fan", "publish"], {"doc": 4})
    record = mesh.wait_final(sent["id"], 60)
    assert record["status"] == FAILED and record["error"]["type"] == "PauseSpecError"
    assert "PAUSE needs exactly one output to park, the handler produced 2" in record["error"]["message"]
    assert mesh.store.get_pause(sent["id"]) is None
