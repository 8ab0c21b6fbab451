"""Issue 10, item 4: SIGTERM to runtime and sidecar together returns leased-but-unstarted work, never fails it.

Before the fix the runtime kept every call that was waiting for a concurrency slot and ran them one by
one within its 25 s grace; what was still waiting then was abandoned (exit 0), and the sidecar counted
each abandoned call as a failed attempt (``RuntimeCrashed``): with ``maxAttempts: 1`` straight to
error-end. Now a call that has not started when SIGTERM arrives is answered ``ShuttingDown`` at once,
the runtime announces that it stops, and whatever it leaves unanswered goes back to the queue with no
attempt counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from asya_common import envelope as env
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from tests.hardening.conftest import HANDLERS
from tests.support.require import wait_for

HANDLER_SECONDS = 10.0  # 4 calls one at a time need 40 s: more than the runtime's 25 s grace


async def _queues(settings: TransportSettings) -> dict[str, list[dict]]:
    """Every envelope left in the actor's queue, happy-end and error-end (leased for a moment, then returned)."""
    found: dict[str, list[dict]] = {}
    async with create_transport(settings) as transport:
        for name in ("slowpoke", env.HAPPY_END, env.ERROR_END):
            messages = await transport.receive(env.queue_name(name), max_messages=10, wait_seconds=3.0,
                                               lease_seconds=5)
            found[name] = [json.loads(m.body) for m in messages]
            for message in messages:
                await transport.nack(message)
    return found


async def test_sigterm_to_both_returns_unstarted_calls_without_an_attempt(tmp_path):
    settings = TransportSettings(sqlite_path=str(tmp_path / "queues.sqlite3"))
    async with create_transport(settings) as transport:
        for name in ("slowpoke", env.HAPPY_END, env.ERROR_END):
            await transport.ensure_queue(QueueSpec(env.queue_name(name), env.dlq_name(name)))
        for i in range(4):
            envelope = env.make_envelope(["slowpoke"], {"seconds": HANDLER_SECONDS, "i": i}, envelope_id=f"s{i}")
            await transport.send(env.queue_name("slowpoke"), env.dumps(envelope))
    socket = tmp_path / "run" / "rt.sock"
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HANDLERS), os.environ.get("PYTHONPATH", "")]),
            "ASYA_ACTOR_NAME": "slowpoke", "ASYA_SOCKET_PATH": str(socket), "PYTHONUNBUFFERED": "1"}
    runtime = subprocess.Popen([sys.executable, "-m", "asya_runtime"], cwd=tmp_path,
                               env={**base, "ASYA_HANDLER": "hd_handlers.slow", "ASYA_CONCURRENCY": "1"},
                               stdout=open(tmp_path / "runtime.log", "wb"), stderr=subprocess.STDOUT)
    sidecar_log = tmp_path / "sidecar.log"
    sidecar = subprocess.Popen([sys.executable, "-m", "asya_sidecar"], cwd=tmp_path, env={
        **base, "ASYA_TRANSPORT": "sqlite", "ASYA_SQLITE_PATH": settings.sqlite_path, "ASYA_CONCURRENCY": "4",
        "ASYA_METRICS_PORT": "0", "ASYA_METRICS_HOST": "127.0.0.1", "ASYA_SHUTDOWN_GRACE": "60s",
        "ASYA_ACTOR_TIMEOUT": "120s", "ASYA_RETRY_MAX_ATTEMPTS": "1", "ASYA_LEASE_SECONDS": "5"},
        stdout=open(sidecar_log, "wb"), stderr=subprocess.STDOUT)
    try:
        async with create_transport(settings) as transport:
            async def all_leased() -> bool:
                return (await transport.depth(env.queue_name("slowpoke"))).in_flight == 4
            deadline = time.monotonic() + 60
            while not await all_leased():
                assert time.monotonic() < deadline, sidecar_log.read_text()[-2000:]
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the four calls are sent; one runs, three wait for the runtime's only slot
        runtime.send_signal(signal.SIGTERM)
        sidecar.send_signal(signal.SIGTERM)
        assert runtime.wait(timeout=60) == 0
        assert sidecar.wait(timeout=90) == 0, sidecar_log.read_text()[-3000:]
    finally:
        for proc in (runtime, sidecar):
            if proc.poll() is None:
                proc.kill()
    left = await _queues(settings)
    assert left[env.ERROR_END] == [], "an unstarted call was failed into error-end"
    returned = left["slowpoke"] + [e for e in left[env.HAPPY_END]]
    assert sorted(e["id"] for e in returned) == ["s0", "s1", "s2", "s3"], left
    for envelope in left["slowpoke"]:
        headers = envelope.get("headers", {})
        assert headers.get(env.H_ATTEMPT, 1) == 1 and not headers.get(env.H_ATTEMPT_ERRORS), envelope
