"""The events feed: backlog then live, in seq order, with no gap and no duplicate, across replicas."""

from __future__ import annotations

import asyncio
import threading

from asya_common import envelope as env
from asya_common.status import FLY, SUCCEEDED, Event, open_store
from asya_common.status.feed import EventFeed


def write_chunks(store, root, n, final=True):
    for i in range(n):
        store.record_progress([Event(0, root, root, FLY, "llm", {"i": i})])
    if final:
        store.record_final({"id": root, "route": {"prev": ["llm"], "curr": "happy-end", "next": []},
                            "headers": {}, "payload": n}, SUCCEEDED, actor="llm", result=n)


async def collect(feed, root, after_seq=0, stop_after=None):
    seen = []
    async for event in feed.subscribe(root, after_seq):
        seen.append(event)
        if event.kind == SUCCEEDED or (stop_after is not None and len(seen) >= stop_after):
            break
    return seen


def test_subscriber_sees_backlog_then_live_without_gap_or_duplicate(store_url):
    store = open_store(store_url)
    root = env.make_envelope(["llm"], "hi")
    store.create(root)
    write_chunks(store, root["id"], 20, final=False)  # backlog before anyone subscribes

    async def main():
        feed = await EventFeed(store, poll_interval=0.05).start()
        writer = threading.Thread(target=write_chunks, args=(open_store(store_url), root["id"], 80))
        task = asyncio.create_task(collect(feed, root["id"]))
        writer.start()
        seen = await asyncio.wait_for(task, 120)
        await asyncio.to_thread(writer.join)
        await feed.close()
        return seen

    seen = asyncio.run(main())
    chunks = [e.data["i"] for e in seen if e.kind == FLY]
    assert chunks == list(range(20)) + list(range(80))
    assert [e.seq for e in seen] == sorted({e.seq for e in seen})
    assert seen[0].kind == "created" and seen[-1].kind == SUCCEEDED


def test_reconnect_with_after_seq_misses_none_and_repeats_none(store_url):
    store = open_store(store_url)
    root = env.make_envelope(["llm"], "hi")
    store.create(root)

    async def main():
        feed = await EventFeed(store, poll_interval=0.05).start()
        writer = threading.Thread(target=write_chunks, args=(open_store(store_url), root["id"], 150))
        writer.start()
        first = await asyncio.wait_for(collect(feed, root["id"], stop_after=40), 120)  # then "disconnect"
        second = await asyncio.wait_for(collect(feed, root["id"], after_seq=first[-1].seq), 120)
        await asyncio.to_thread(writer.join)
        await feed.close()
        return first + second

    seen = asyncio.run(main())
    assert [e.data["i"] for e in seen if e.kind == FLY] == list(range(150))
    assert len({e.seq for e in seen}) == len(seen)


def test_two_replicas_over_postgres_see_every_chunk_of_the_other_in_order(postgres_url):
    """Replica B's store writes; replica A's feed (LISTEN/NOTIFY, poll fallback off) streams it."""
    replica_a, replica_b = open_store(postgres_url), open_store(postgres_url)
    root = env.make_envelope(["llm"], "hi")
    replica_b.create(root)

    async def main():
        feed_a = await EventFeed(replica_a, poll_interval=3600).start()  # only NOTIFY can wake it
        feed_b = await EventFeed(replica_b, poll_interval=3600).start()
        assert feed_a.listening and feed_b.listening
        task_a = asyncio.create_task(collect(feed_a, root["id"]))
        task_b = asyncio.create_task(collect(feed_b, root["id"]))
        await asyncio.sleep(0)  # both subscribed before the writes start
        writer = threading.Thread(target=write_chunks, args=(replica_b, root["id"], 200))
        writer.start()
        seen_a, seen_b = await asyncio.wait_for(asyncio.gather(task_a, task_b), 120)
        await asyncio.to_thread(writer.join)
        await feed_a.close()
        await feed_b.close()
        return seen_a, seen_b

    seen_a, seen_b = asyncio.run(main())
    assert [e.data["i"] for e in seen_a if e.kind == FLY] == list(range(200))
    assert [e.seq for e in seen_a] == [e.seq for e in seen_b]


def test_concurrent_writers_never_let_a_reader_skip_a_seq(store_url):
    """Seq order is commit order: a tail that reads 'after N' while others write never skips a row."""
    store = open_store(store_url)
    roots = [env.make_envelope(["llm"], i)["id"] for i in range(4)]

    async def main():
        feed = await EventFeed(store, poll_interval=0.01).start()
        tasks = [asyncio.create_task(collect(feed, r)) for r in roots]
        await asyncio.sleep(0)
        writers = [threading.Thread(target=write_chunks, args=(open_store(store_url), r, 60)) for r in roots]
        [w.start() for w in writers]
        results = await asyncio.wait_for(asyncio.gather(*tasks), 180)
        [await asyncio.to_thread(w.join) for w in writers]
        await feed.close()
        return results

    for seen in asyncio.run(main()):
        assert [e.data["i"] for e in seen if e.kind == FLY] == list(range(60))


def test_postgres_listener_reconnects_after_its_connection_is_killed(postgres_url):
    """pg_terminate_backend on the LISTEN connection: the feed reconnects and keeps waking on NOTIFY."""
    import psycopg

    store = open_store(postgres_url)
    root = env.make_envelope(["llm"], "hi")
    store.create(root)

    async def main():
        feed = await EventFeed(store, poll_interval=3600).start()
        assert feed.listening
        listeners = ("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN asya_events%' "
                     "AND pid <> pg_backend_pid() AND datname = current_database()")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            [(old_pid,)] = admin.execute(listeners).fetchall()
            admin.execute("SELECT pg_terminate_backend(?)".replace("?", "%s"), (old_pid,))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while [row[0] for row in admin.execute(listeners).fetchall()] in ([], [old_pid]) or not feed.listening:
                assert loop.time() < deadline, "the feed did not LISTEN again"
                await asyncio.sleep(0.05)
        task = asyncio.create_task(collect(feed, root["id"]))
        await asyncio.sleep(0)
        await asyncio.to_thread(write_chunks, store, root["id"], 5)
        seen = await asyncio.wait_for(task, 30)
        await feed.close()
        return seen

    seen = asyncio.run(main())
    assert [e.data["i"] for e in seen if e.kind == FLY] == list(range(5))
