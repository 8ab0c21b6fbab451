"""GatewayService.wait_final, the call the MCP and A2A faces block on: the settled tree, None on timeout,
time spent paused not counted. Real store (SQLite and PostgreSQL), real feed, real embedded queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from asya_common import envelope as env
from asya_common.status import SUCCEEDED, open_store
from asya_common.status.feed import EventFeed
from asya_common.transport import create_transport
from asya_gateway.auth import ANONYMOUS
from asya_gateway.metrics import GatewayMetrics
from asya_gateway.service import GatewayService
from asya_gateway.tools import Tool
from asya_common.logging import get_logger
from tests.gateway.harness import make_queues


@pytest.fixture
def service_parts(backend, transport):
    make_queues(transport, "svc")
    store = open_store(backend.location)
    yield store, transport
    store.close()


async def run_with_service(store, transport_settings, body):
    async with create_transport(transport_settings) as transport:
        feed = EventFeed(store, poll_interval=0.02)
        await feed.start()
        service = GatewayService(store, transport, feed, {"svc": Tool("svc", "", ["svc"])},
                                 queue_prefix=transport_settings.queue_prefix, metrics=GatewayMetrics(),
                                 log=get_logger(component="test"))
        try:
            return await body(service)
        finally:
            await feed.close()


def finish_later(store, envelope_id: str, delay: float, pause_for: float = 0.0) -> None:
    """What the mesh would do: running, an optional pause (park + resume by hand), then the final record."""
    time.sleep(delay)
    store.mark_running(envelope_id, "svc")
    if pause_for:
        envelope = env.make_envelope(["svc"], {}, envelope_id=envelope_id)
        store.park(env.advance(env.copy_envelope(envelope)), {"prompt": "ok?"}, "svc")
        time.sleep(pause_for)
        store.claim_pause(envelope_id)
        store.finish_pause(envelope_id, "resumed", actor="svc", resumed=True, data={})
    done = env.advance(env.make_envelope(["svc"], {}, envelope_id=envelope_id))
    store.record_final(done, SUCCEEDED, actor="svc", result={"ok": True})


def test_wait_final_returns_the_settled_tree(service_parts):
    store, transport = service_parts

    async def body(service):
        record = await service.submit(tool="svc", arguments={}, principal=ANONYMOUS)
        worker = asyncio.to_thread(finish_later, store, record["id"], 0.3)
        final, _ = await asyncio.gather(service.wait_final(record["id"], ANONYMOUS, timeout=30), worker)
        return final

    final = asyncio.run(run_with_service(store, transport, body))
    assert final["status"] == "succeeded" and final["result"] == {"ok": True}


def test_wait_final_gives_up_after_the_timeout(service_parts):
    store, transport = service_parts

    async def body(service):
        record = await service.submit(tool="svc", arguments={}, principal=ANONYMOUS)
        started = time.monotonic()
        final = await service.wait_final(record["id"], ANONYMOUS, timeout=0.5)
        return final, time.monotonic() - started

    final, waited = asyncio.run(run_with_service(store, transport, body))
    assert final is None and waited >= 0.5


def test_time_spent_paused_does_not_count_against_the_timeout(service_parts):
    store, transport = service_parts

    async def body(service):
        record = await service.submit(tool="svc", arguments={}, principal=ANONYMOUS)
        worker = asyncio.to_thread(finish_later, store, record["id"], 0.1, pause_for=2.0)
        final, _ = await asyncio.gather(service.wait_final(record["id"], ANONYMOUS, timeout=1.5), worker)
        return final

    final = asyncio.run(run_with_service(store, transport, body))
    assert final is not None and final["status"] == "succeeded", "the 2 s pause was counted against 1.5 s"
