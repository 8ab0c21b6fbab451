"""``asya dlq list | show | redrive`` on real queues: nothing lost, attempts reset, bad bodies kept.

Runs the real CLI as a subprocess on the SQLite transport and on every broker whose fixture is
available (tests/support/brokers.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from asya_common import dlq
from asya_common import envelope as env
from asya_common.transport import QueueSpec, TransportSettings
from tests.cluster.harness import open_transport, sqlite_settings, transport_env, wait_until

pytestmark = [pytest.mark.timeout(180)]
KINDS = ["sqlite", "rabbitmq", "sqs", "pubsub"]


@pytest.fixture(params=KINDS)
def settings(request, tmp_path) -> TransportSettings:
    if request.param == "sqlite":
        return sqlite_settings(tmp_path / "queues.sqlite3")
    return request.getfixturevalue(f"{request.param}_settings")


def _failed_envelope(i: int) -> dict:
    envelope = env.make_envelope(["judge", "store"], {"i": i}, headers={"x-team": "nlp"})
    envelope["headers"].update({
        env.H_ATTEMPT: 3, env.H_NOT_BEFORE: 1.0,
        env.H_ATTEMPT_ERRORS: [{"attempt": 1, "type": "TimeoutError", "message": "slow"}],
        env.H_ERROR: {"actor": "judge", "type": "ValueError", "message": f"bad input {i}", "traceback": "...",
                      "attempts": [{"attempt": 3, "type": "ValueError", "message": f"bad input {i}"}]},
    })
    return envelope


def _asya(settings: TransportSettings, tmp_path, *args: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **transport_env(settings), "ASYA_LOG_LEVEL": "WARNING"}
    asya = Path(sys.executable).with_name("asya")  # the installed console script, as a user runs it
    return subprocess.run([str(asya), "dlq", *args, "--state-dir", str(tmp_path / "st")],
                          capture_output=True, text=True, env=environ, timeout=120)


async def _drain(transport, queue: str, expect: int) -> list[dict]:
    bodies = []
    for _ in range(200):
        batch = await transport.receive(queue, max_messages=10, wait_seconds=1.0)
        for message in batch:
            bodies.append(env.loads(message.body))
            await transport.ack(message)
        if len(bodies) >= expect and not batch:
            break
    return bodies


async def test_redrive_of_100_lands_all_back_with_attempts_reset(settings, tmp_path):
    actor = f"judge{uuid.uuid4().hex[:6]}"
    queue, dead = env.queue_name(actor, settings.queue_prefix), env.dlq_name(actor, settings.queue_prefix)
    transport = await open_transport(settings)
    try:
        await transport.ensure_queue(QueueSpec(name=queue, dlq_name=dead, max_receive_count=5))
        envelopes = [_failed_envelope(i) for i in range(100)]
        await transport.send_many(dead, [env.dumps(e) for e in envelopes])
        await transport.send(dead, b"\xff not an envelope")

        async def dlq_total_is(count: int) -> bool:
            return (await transport.depth(dead)).total == count

        if settings.kind == "pubsub" and settings.pubsub_emulator_host:
            listed = _asya(settings, tmp_path, "list", actor, "--json")  # the emulator has no depth metric
            assert listed.returncode == 2 and "depth is not available" in listed.stderr, listed.stderr
        else:
            # RabbitMQ's depth comes from management statistics, which lag by their collection interval
            await wait_until(lambda: dlq_total_is(101), 30, "101 messages counted in the DLQ")
            listed = _asya(settings, tmp_path, "list", actor, "--json")
            assert listed.returncode == 0, listed.stderr
            assert json.loads(listed.stdout)[actor]["total"] == 101

        shown = _asya(settings, tmp_path, "show", actor, "-n", "3")
        assert shown.returncode == 0, shown.stderr
        lines = [json.loads(line) for line in shown.stdout.splitlines()]
        assert len(lines) == 3
        decoded = [line for line in lines if "error" in line]
        assert decoded and all(line["error"]["type"] == "ValueError" and line["error"]["message"].startswith(
            "bad input") for line in decoded)
        if settings.kind != "pubsub":
            await wait_until(lambda: dlq_total_is(101), 30, "show consumed nothing")

        part = _asya(settings, tmp_path, "redrive", actor, "--limit", "30")
        assert part.returncode == 0, part.stderr
        assert "redrove 30 envelope(s)" in part.stdout
        rest = _asya(settings, tmp_path, "redrive", actor)
        assert rest.returncode == 0, rest.stderr
        assert "redrove 70 envelope(s)" in rest.stdout and "left 1 undecodable" in rest.stdout

        back = await _drain(transport, queue, 100)
        assert sorted(e["id"] for e in back) == sorted(e["id"] for e in envelopes)
        for envelope in back:
            assert not set(dlq.RETRY_HEADERS) & set(envelope["headers"]), envelope["headers"]
            assert envelope["headers"]["x-team"] == "nlp" and envelope["route"]["curr"] == "judge"
        remaining = await wait_until(lambda: transport.receive(dead, max_messages=10, wait_seconds=1.0), 30,
                                     "the undecodable body visible again in the DLQ")
        assert [m.body for m in remaining] == [b"\xff not an envelope"]
    finally:
        await transport.close()


class _CrashOnAck:
    """Wraps a transport and fails the first ack, as if the process died between send and ack."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def ack(self, message):
        raise RuntimeError("crash between send and ack")


async def test_interrupted_redrive_duplicates_but_never_loses(tmp_path):
    settings = sqlite_settings(tmp_path / "queues.sqlite3")
    transport = await open_transport(settings)
    try:
        await transport.ensure_queue(QueueSpec(name="asya-x", dlq_name="asya-x-dlq"))
        ids = []
        for i in range(10):
            envelope = _failed_envelope(i)
            ids.append(envelope["id"])
            await transport.send("asya-x-dlq", env.dumps(envelope))
        with pytest.raises(RuntimeError):
            await dlq.redrive(_CrashOnAck(transport), "asya-x-dlq", "asya-x", lease_seconds=0.5)
        sent = await _drain(transport, "asya-x", 1)
        assert sent, "the batch was sent before the crash"
        still_dead = await _drain(transport, "asya-x-dlq", 10)  # leases ran out: all back in the DLQ
        assert sorted(e["id"] for e in still_dead) == sorted(ids)
    finally:
        await transport.close()


def test_unknown_actor_is_a_clear_error_not_an_empty_answer(tmp_path):
    settings = sqlite_settings(tmp_path / "queues.sqlite3")
    for verb in (["show", "nosuch"], ["redrive", "nosuch"]):
        proc = _asya(settings, tmp_path, *verb)
        assert proc.returncode == 2
        assert "'asya-nosuch-dlq' does not exist" in proc.stderr and "Traceback" not in proc.stderr
