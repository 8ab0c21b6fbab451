"""SQLite-only contract: what the embedded queue's speed-ups must not change.

The shared suite proves the queue semantics; these tests pin what is particular to the SQLite file:
writes queued together share one commit yet fail alone, an idle receive never waits for another
process's write lock, the ``synchronous`` mode is the one configured, a message ``send`` returned
for survives a kill -9 of the sender in the default mode, and ``forward`` writes a message's outputs and
its ack in one commit (a lost lease or a kill -9 never leaves outputs of an input that is still queued).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from asya_common.transport import LeaseLost, QueueNotFound, QueueSpec, TransportSettings, create_transport
from tests.contract.helpers import drain, receive_one

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_settings_file(tmp_path) -> TransportSettings:
    return TransportSettings(kind="sqlite", sqlite_path=str(tmp_path / "queues.sqlite3"))


@pytest.fixture
async def sq(sqlite_settings_file):
    async with create_transport(sqlite_settings_file) as transport:
        await transport.ensure_queue(QueueSpec("asya-a", "asya-a-dlq", lease_seconds=30))
        await transport.ensure_queue(QueueSpec("asya-empty", "asya-empty-dlq"))
        yield transport


async def _held_executor(transport):
    """Blocks the transport's database thread until the returned event is set (so writes pile up)."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(transport._run(gate.wait))
    await asyncio.sleep(0.05)
    return gate, blocker


async def test_writes_sharing_one_commit_fail_alone(sq):
    await sq.send_many("asya-a", [b"stale", b"fresh"])
    stale = await receive_one(sq, "asya-a", within=5, lease=0.2)
    await asyncio.sleep(0.3)  # its lease runs out; it is leased again (a new token) below
    again = await sq.receive("asya-a", max_messages=2, wait_seconds=1.0)
    assert sorted(m.body for m in again) == [b"fresh", b"stale"]
    gate, blocker = await _held_executor(sq)
    calls = [asyncio.ensure_future(c) for c in (
        sq.ack(stale),  # lost lease: must raise, alone
        sq.send("asya-a", b"sent meanwhile"),
        sq.ack(again[0]),
        sq.receive("asya-empty", wait_seconds=0),  # the peek answers: nothing to lease
        sq.ack(again[1]),
    )]
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], LeaseLost)
    assert results[1:] == [None, None, [], None]
    left = await drain(sq, "asya-a", 2, within=3)
    assert [m.body for m in left] == [b"sent meanwhile"], "an ack in the shared commit was lost, or a send"


async def test_receives_in_one_batch_never_get_the_same_message(sq):
    await sq.send_many("asya-a", [f"m{i}".encode() for i in range(5)])
    gate, blocker = await _held_executor(sq)
    calls = [asyncio.ensure_future(sq.receive("asya-a", max_messages=2, wait_seconds=0)) for _ in range(4)]
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    bodies = [m.body for batch in await asyncio.gather(*calls) for m in batch]
    assert sorted(bodies) == sorted(f"m{i}".encode() for i in range(5))


async def test_a_receive_cancelled_while_queued_leases_nothing(sq):
    await sq.send("asya-a", b"still there")
    gate, blocker = await _held_executor(sq)
    queued = asyncio.ensure_future(sq.receive("asya-a", wait_seconds=0))
    await asyncio.sleep(0.05)
    queued.cancel()
    gate.set()
    await blocker
    with pytest.raises(asyncio.CancelledError):
        await queued
    got = await sq.receive("asya-a", wait_seconds=0)
    assert [m.body for m in got] == [b"still there"] and got[0].receive_count == 1


async def test_idle_receive_does_not_wait_for_another_processes_write_lock(sq, sqlite_settings_file):
    other = sqlite3.connect(sqlite_settings_file.sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing (and holds the lock for a long time)
    try:
        started = time.monotonic()
        assert await sq.receive("asya-empty", wait_seconds=0.3) == []
        assert time.monotonic() - started < 5, "an empty poll queued behind the write lock"
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize("mode, pragma", [("NORMAL", 1), ("FULL", 2), ("full", 2)])
async def test_synchronous_mode_is_the_configured_one(sqlite_settings_file, mode, pragma):
    async with create_transport(replace(sqlite_settings_file, sqlite_synchronous=mode)) as transport:
        assert await transport._run(lambda: transport._conn.execute("PRAGMA synchronous").fetchone()[0]) == pragma


def test_default_synchronous_is_normal_and_typos_are_refused():
    assert TransportSettings().sqlite_synchronous == "NORMAL"
    with pytest.raises(ValueError, match="ASYA_SQLITE_SYNCHRONOUS"):
        TransportSettings(sqlite_synchronous="OFF")


async def test_sent_messages_survive_kill_9_of_the_sender(sq, sqlite_settings_file):
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.sender_process", json.dumps(dataclasses.asdict(sqlite_settings_file)),
         "asya-a"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while len(lines) < 200:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
            if not line:
                break
            lines.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    lines += child.stdout.read().splitlines()
    sent = {int(line.split()[1]) for line in lines if line.startswith("SENT")}
    assert len(sent) >= 200, f"the sender did not get going: {child.stderr.read()[-3000:]}"
    received = await drain(sq, "asya-a", len(sent) + 1, within=30)
    bodies = [int(m.body) for m in received]
    assert len(bodies) == len(set(bodies)), "a message was stored twice"
    assert sent <= set(bodies), f"lost after kill -9: {sorted(sent - set(bodies))[:10]}"


async def test_forward_after_the_lease_expired_and_was_taken_leaves_no_output(sq):
    await sq.send("asya-a", b"input")
    stale = await receive_one(sq, "asya-a", within=5, lease=0.2)
    await asyncio.sleep(0.3)  # its lease runs out; another consumer leases it (a new token)
    (taken,) = await sq.receive("asya-a", wait_seconds=1.0)
    with pytest.raises(LeaseLost):
        await sq.forward(stale, "asya-empty", [b"output"])
    assert (await sq.depth("asya-empty")).total == 0, "a lost lease published its output"
    await sq.forward(taken, "asya-empty", [b"output"])
    assert [m.body for m in await drain(sq, "asya-empty", 2, within=2)] == [b"output"]
    assert (await sq.depth("asya-a")).total == 0


async def test_forward_after_the_lease_expired_but_nobody_took_it_commits_once(sq):
    await sq.send("asya-a", b"input")
    late = await receive_one(sq, "asya-a", within=5, lease=0.2)
    await asyncio.sleep(0.3)  # expired, but still carrying our token: the delete and the insert are one commit
    await sq.forward(late, "asya-empty", [b"output"])
    assert (await sq.depth("asya-a")).total == 0 and (await sq.depth("asya-empty")).total == 1


async def test_forwards_sharing_one_commit_fail_alone(sq):
    await sq.send_many("asya-a", [b"stale", b"fresh"])
    stale = await receive_one(sq, "asya-a", within=5, lease=0.2)
    await asyncio.sleep(0.3)
    again = {m.body: m for m in await sq.receive("asya-a", max_messages=2, wait_seconds=1.0)}
    gate, blocker = await _held_executor(sq)
    calls = [asyncio.ensure_future(c) for c in (
        sq.forward(stale, "asya-empty", [b"from the stale lease"]),  # lost lease: nothing of it lands
        sq.forward(again[b"fresh"], "asya-missing", [b"nowhere"]),  # missing queue: the delete is rolled back
        sq.forward(again[b"stale"], "asya-empty", [b"stale-1", b"stale-2"]),
    )]
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], LeaseLost) and isinstance(results[1], QueueNotFound) and results[2] is None
    out = await drain(sq, "asya-empty", 3, within=2)
    assert sorted(m.body for m in out) == [b"stale-1", b"stale-2"]
    await sq.ack(again[b"fresh"])  # the failed forward left it leased to its owner
    assert (await sq.depth("asya-a")).total == 0


async def test_forwarder_killed_with_sigkill_publishes_each_output_once_or_keeps_its_input(sq, sqlite_settings_file):
    """Outputs and ack in one commit: after a kill -9, each input either left with its output or is still queued."""
    count = 400
    await sq.send_many("asya-a", [str(i).encode() for i in range(count)])
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.forwarder_process", json.dumps(dataclasses.asdict(sqlite_settings_file)),
         "asya-a", "asya-empty", "1.0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    forwarded = 0
    try:
        while forwarded < 100:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
            if not line:
                break
            forwarded += line.startswith("FORWARDED")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert forwarded >= 100, f"the forwarder did not get going: {child.stderr.read()[-3000:]}"
    outputs, left = [], []
    deadline = time.monotonic() + 60
    while len(outputs) + len(left) < count and time.monotonic() < deadline:  # the child's 1 s leases run out
        outputs += [int(m.body) for m in await drain(sq, "asya-empty", count, within=0.5)]
        left += [int(m.body) for m in await drain(sq, "asya-a", count, within=0.5)]
    assert len(outputs) == len(set(outputs)), "an output was published twice"
    assert not set(outputs) & set(left), "an input was forwarded and is still queued"
    assert sorted(outputs + left) == list(range(count)), "an input was lost"
