"""The sidecar's handler calls against a real runtime process: held calls wait in the runtime only when it runs
as many calls at once as the sidecar, and a call's ``actorTimeout`` starts when a handler is free for it."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import CollectorRegistry

from asya_common import envelope as env
from asya_common.settings import load_settings
from asya_common.transport import ReceivedMessage
from asya_sidecar.handler_calls import HandlerCalls
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.runtime_client import RuntimeClient
from asya_sidecar.settings import SidecarSettings

from .client import RuntimeProcess


class _Logged:
    def __init__(self):
        self.warnings: list[tuple[str, dict]] = []

    def warning(self, event, **fields):
        self.warnings.append((event, fields))

    def error(self, event, **fields):
        pass


async def _calls(tmp_path, runtime_concurrency: int, sidecar_concurrency: int, timeout: str = "30s"):
    process = RuntimeProcess(tmp_path, "rt_overlap.overlap", ASYA_CONCURRENCY=str(runtime_concurrency))
    await process.wait_ready()
    settings = load_settings(SidecarSettings, {
        "ASYA_ACTOR_NAME": "test-actor", "ASYA_SOCKET_PATH": str(process.socket_path),
        "ASYA_CONCURRENCY": str(sidecar_concurrency), "ASYA_ACTOR_TIMEOUT": timeout})
    log = _Logged()
    runtime = RuntimeClient(str(process.socket_path), connect_timeout=10)
    calls = HandlerCalls(settings, runtime, SidecarMetrics("test-actor", CollectorRegistry()), log)
    return process, runtime, calls, log


async def _run(calls: HandlerCalls, payloads: list[dict]) -> list[dict]:
    async def one(payload):
        envelope = env.make_envelope(["test-actor"], payload)
        message = ReceivedMessage(queue="asya-test-actor", body=env.dumps(envelope), message_id=envelope["id"],
                                  receive_count=1)
        return await calls.call(message, envelope, 1, structlog.get_logger())
    return await asyncio.gather(*(one(p) for p in payloads))


async def test_a_runtime_that_allows_more_calls_than_the_sidecar_never_gets_more_at_once(tmp_path):
    # The runtime would run two at once, the sidecar allows one: calls are sent one at a time, and the sidecar
    # says why the containers disagree.
    process, runtime, calls, log = await _calls(tmp_path, runtime_concurrency=2, sidecar_concurrency=1)
    try:
        frames = await _run(calls, [{"sleep": 0.2, "i": i} for i in range(4)])
        assert [f["type"] for f in frames] == ["result"] * 4, frames
        assert max(f["outputs"][0]["payload"]["most_at_once"] for f in frames) == 1
        assert [fields for event, fields in log.warnings if "different number of calls" in event] == [
            {"runtime_concurrency": 2, "concurrency": 1}]
    finally:
        await runtime.close()
        process.stop()


async def test_calls_waiting_in_the_runtime_do_not_spend_their_timeout_while_they_wait(tmp_path):
    # Same concurrency on both sides: all four calls are in the runtime at once and run one after another
    # (0.8 s in all); each has 0.5 s, which is enough only if the clock starts when its turn comes.
    process, runtime, calls, log = await _calls(tmp_path, runtime_concurrency=1, sidecar_concurrency=1,
                                                timeout="500ms")
    try:
        frames = await _run(calls, [{"sleep": 0.2, "i": i} for i in range(4)])
        assert [f["type"] for f in frames] == ["result"] * 4, frames
        assert max(f["outputs"][0]["payload"]["most_at_once"] for f in frames) == 1
        assert log.warnings == []
    finally:
        await runtime.close()
        process.stop()
