"""The sidecar's event writer: FLY chunks batched in order, never waiting, bounded, drops counted."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from prometheus_client import CollectorRegistry

from asya_common import envelope as env
from asya_common.logging import get_logger
from asya_common.status import FLY, RUNNING, SPAWNED, open_store
from asya_sidecar.events import StoreEvents


def dropped(registry: CollectorRegistry, kind: str = FLY) -> float:
    return registry.get_sample_value("asya_sidecar_fly_dropped_total", {"actor": "llm", "kind": kind}) or 0.0


async def started(location, registry, **kwargs):
    return await StoreEvents(location, "llm", registry, get_logger(actor="llm"), **kwargs).start()


def test_running_spawned_and_fly_are_written_in_order_in_batches(store_url):
    registry = CollectorRegistry()
    root = env.make_envelope(["llm"], "hi")
    open_store(store_url).create(root)

    async def main():
        events = await started(store_url, registry, batch_size=50)
        events.running(root["id"], "llm")
        for i in range(300):
            events.fly(root["id"], "llm", {"i": i})
        await events.spawned(root["id"], [f"{root['id']}-1"], "llm")
        assert await events.flush(30) is True
        await events.close()

    asyncio.run(main())
    store = open_store(store_url)
    kinds = [e.kind for e in store.events(root["id"])]
    assert kinds == ["created", RUNNING] + [FLY] * 300 + [SPAWNED]
    assert [e.data["i"] for e in store.events(root["id"]) if e.kind == FLY] == list(range(300))
    assert store.get(f"{root['id']}-1")["root_id"] == root["id"]
    assert registry.get_sample_value("asya_sidecar_events_written_total", {"actor": "llm"}) == 302
    assert dropped(registry) == 0


class Blocker:
    """Another client holding the lock the writer needs (SQLite: the write lock; PostgreSQL: the events table)."""

    def __init__(self, store_url: str):
        self.url = store_url
        if store_url.startswith("postgresql://"):
            import psycopg

            self.conn = psycopg.connect(store_url, autocommit=True)
        else:
            self.conn = sqlite3.connect(store_url, isolation_level=None)

    def hold(self) -> None:
        if self.url.startswith("postgresql://"):
            self.conn.execute("BEGIN")
            self.conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        else:
            self.conn.execute("BEGIN IMMEDIATE")  # SQLite's one write lock

    def release(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def test_a_blocked_store_never_delays_fly_and_drops_beyond_the_bound_are_counted(store_url):
    """fly() returns at once while the store is blocked; the queue stays bounded; drops are counted."""
    root = env.make_envelope(["llm"], "hi")
    open_store(store_url).create(root)
    registry = CollectorRegistry()
    blocker = Blocker(store_url)

    async def main():
        events = await started(store_url, registry, queue_size=20, flush_timeout=0.2)
        blocker.hold()  # the writer's next transaction now waits
        events.fly(root["id"], "llm", {"i": -1})
        await asyncio.sleep(0.3)  # the writer has taken that one and is stuck on the lock
        started_at = time.perf_counter()
        for i in range(500):
            events.fly(root["id"], "llm", {"i": i})
        enqueue_seconds = time.perf_counter() - started_at
        assert await events.flush() is False  # bounded: gives up after flush_timeout
        blocker.release()
        assert await events.flush(30) is True
        await events.close()
        return enqueue_seconds

    enqueue_seconds = asyncio.run(main())
    print(f"500 fly() calls against a locked store: {enqueue_seconds * 1000:.1f} ms")
    written = [e.data["i"] for e in open_store(store_url).events(root["id"]) if e.kind == FLY]
    assert written == [-1] + list(range(20))  # the bound, in order; the rest dropped and counted
    assert dropped(registry) == 480


def test_lost_postgres_drops_and_counts_but_never_blocks(postgres_url, postgres_server_url):
    """The database disappears under a running sidecar (dropped, connections terminated)."""
    import psycopg

    registry = CollectorRegistry()

    async def main():
        events = await started(postgres_url, registry, queue_size=100)
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {postgres_url.rsplit('/', 1)[1]} WITH (FORCE)")
        for i in range(10):
            events.fly("e1", "llm", {"i": i})
        assert await events.flush(10) is True  # handled (dropped after retries), not stuck
        await events.close()

    asyncio.run(main())
    assert dropped(registry) == 10
