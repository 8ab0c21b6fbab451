"""Bare relay figures per broker: what our Transport costs for receive -> send -> ack, without a runtime.

:func:`bare_relay` pre-fills a queue with ``n_messages`` and measures how fast ``concurrency``
in-process workers move them to a second queue through :class:`Transport` (throughput), then sends
``latency_n`` messages one at a time and measures the per-hop latency (send until the relay has
received it). On RabbitMQ it measures the same with plain aio-pika (publisher confirms, prefetch =
concurrency), which tells how much our transport layer adds over the client library.

``python -m benchmarks.relay [--transports rabbitmq,sqs,pubsub] [-n 2000]`` starts each broker on
loopback (as the test fixtures do), prints one line per transport and stops the brokers.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from asya_common.transport import QueueSpec, TransportSettings, create_transport
from benchmarks.stats import latency_percentiles


def _stamped(size: int) -> bytes:
    return struct.pack("!d", time.perf_counter()) + b"x" * max(0, size - 8)


async def bare_relay(
    transport_settings: TransportSettings,
    n_messages: int,
    *,
    concurrency: int = 8,
    latency_n: int = 100,
    body_bytes: int = 512,
) -> dict[str, Any]:
    """Measures a relay through our Transport (and, on RabbitMQ, through bare aio-pika).

    Args:
        transport_settings: Which broker and how to reach it.
        n_messages: Messages in the throughput run.
        concurrency: Relay workers (and receive batch size).
        latency_n: Messages sent one at a time for the latency run.
        body_bytes: Body size of every message.

    Returns:
        ``{"transport", "msgs_per_s", "p50_ms", "p99_ms", ...}``; on RabbitMQ also ``"aio_pika"``
        with the same figures for the bare client.
    """
    source, target = (f"asya-bench-{uuid.uuid4().hex[:8]}-{side}" for side in ("in", "out"))
    async with create_transport(transport_settings) as transport:
        for name in (source, target):
            await transport.ensure_queue(QueueSpec(name=name, dlq_name=f"{name}-dlq"))
        try:
            result = await _measure_transport(transport, source, target, n_messages, concurrency, latency_n, body_bytes)
        finally:
            for name in (source, target):
                await transport.delete_queue(name)
                await transport.delete_queue(f"{name}-dlq")
    result["transport"] = transport_settings.kind
    if transport_settings.kind == "rabbitmq":
        result["aio_pika"] = await _measure_aio_pika(transport_settings, n_messages, concurrency, latency_n, body_bytes)
    return result


async def _measure_transport(transport, source, target, n, concurrency, latency_n, body_bytes) -> dict[str, Any]:
    body = b"x" * body_bytes
    for start in range(0, n, 100):
        await transport.send_many(source, [body] * min(100, n - start))
    moved = 0
    done = asyncio.Event()

    async def worker() -> None:
        nonlocal moved
        while not done.is_set():
            for message in await transport.receive(source, max_messages=concurrency, wait_seconds=0.5):
                await transport.send(target, message.body)
                await transport.ack(message)
                moved += 1
                if moved >= n:
                    done.set()

    started = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.wait_for(done.wait(), timeout=max(120, n / 5))
    elapsed = time.perf_counter() - started
    # Let workers finish their current receive: a cancelled long poll can still lease a message.
    await asyncio.gather(*workers, return_exceptions=True)

    hops = []
    for _ in range(latency_n):
        await transport.send(source, _stamped(body_bytes))
        while True:
            got = await transport.receive(source, max_messages=1, wait_seconds=5)
            if got:
                break
        hops.append(time.perf_counter() - struct.unpack("!d", got[0].body[:8])[0])
        await transport.send(target, got[0].body)
        await transport.ack(got[0])
    return {"n": n, "concurrency": concurrency, "msgs_per_s": n / elapsed, **latency_percentiles(hops)}


async def _measure_aio_pika(settings: TransportSettings, n, concurrency, latency_n, body_bytes) -> dict[str, Any]:
    import aio_pika

    url = settings.rabbitmq_url.split("?")[0]
    connection = await aio_pika.connect(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=concurrency)
        names = [f"asya-bench-pika-{uuid.uuid4().hex[:8]}-{side}" for side in ("in", "out")]
        queues = [await publisher.declare_queue(q, durable=True, arguments={"x-queue-type": "quorum"}) for q in names]
        source = await consumer_channel.get_queue(names[0])

        async def publish(queue: str, data: bytes) -> None:
            message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await publisher.default_exchange.publish(message, routing_key=queue)

        for start in range(0, n, 100):
            await asyncio.gather(*(publish(names[0], b"x" * body_bytes) for _ in range(min(100, n - start))))
        moved, done, hops = 0, asyncio.Event(), []
        latency_mode = False

        async def relay(message) -> None:
            nonlocal moved
            if latency_mode:
                hops.append(time.perf_counter() - struct.unpack("!d", message.body[:8])[0])
            await publish(names[1], message.body)
            await message.ack()
            moved += 1
            if moved >= n or latency_mode:
                done.set()

        started = time.perf_counter()
        tag = await source.consume(relay)
        await asyncio.wait_for(done.wait(), timeout=max(120, n / 5))
        elapsed = time.perf_counter() - started
        latency_mode = True
        for _ in range(latency_n):
            done.clear()
            await publish(names[0], _stamped(body_bytes))
            await asyncio.wait_for(done.wait(), 10)
        await source.cancel(tag)
        for queue in queues:
            await queue.delete(if_unused=False, if_empty=False)
    return {"n": n, "concurrency": concurrency, "msgs_per_s": n / elapsed, **latency_percentiles(hops)}


def _format(row: dict[str, Any]) -> str:
    return f"{row['msgs_per_s']:8.0f} msgs/s  hop p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms"


async def _main() -> None:
    from tests.support import brokers

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transports", default="rabbitmq,sqs,pubsub")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-n", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asya-bench-brokers-") as tmp:
        for kind in args.transports.split(","):
            await _bench_one(brokers, Path(tmp), kind, args)


async def _bench_one(brokers: Any, workdir: Path, kind: str, args: argparse.Namespace) -> None:
    """Starts one broker in ``workdir``, prints its figures, stops it."""
    server, settings = brokers.start_local(kind, workdir / kind)
    try:
        result = await bare_relay(settings, args.n, concurrency=args.concurrency, latency_n=args.latency_n)
        print(f"{kind:<9} transport  {_format(result)}", flush=True)
        if "aio_pika" in result:
            print(f"{kind:<9} aio-pika   {_format(result['aio_pika'])}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(_main())
