"""Measures a 3-actor no-op pipeline: our sidecar + runtime against a bare relay, on one transport.

Topology (same for both): bench publishes -> a -> b -> c -> the ``happy-end`` queue, which the
bench itself drains (no crew), so both sides do exactly the same queue work and differ only in
what a stage does: the sidecar decodes, calls the runtime over the socket, routes and re-encodes;
the relay only moves bytes.

* throughput: N envelopes published at once; hops/s = 3 N / time until the last one arrives.
* latency: envelopes paced at a fixed rate; per-hop latency = (arrival - publish) / 4 queue hops.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from asya_cli.dev import DevMesh
from asya_cli.values import ActorSpec
from asya_common import envelope as env
from asya_common.settings import to_env
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from benchmarks.stats import latency_percentiles

HERE = Path(__file__).resolve().parent
STAGES = ["bench-a", "bench-b", "bench-c"]
SINK = env.HAPPY_END


async def _reset_queues(settings: TransportSettings) -> None:
    async with create_transport(settings) as transport:
        for name in [*STAGES, SINK]:
            queue = env.queue_name(name, settings.queue_prefix)
            await transport.delete_queue(queue)
            await transport.delete_queue(env.dlq_name(name, settings.queue_prefix))
            await transport.ensure_queue(QueueSpec(queue, env.dlq_name(name, settings.queue_prefix)))


async def _drive(settings: TransportSettings, count: int, rate: float | None) -> tuple[float, list[float]]:
    """Publishes ``count`` envelopes (all at once, or paced at ``rate``/s); returns elapsed time and latencies."""
    first = env.queue_name(STAGES[0], settings.queue_prefix)
    sink = env.queue_name(SINK, settings.queue_prefix)
    latencies: list[float] = []
    async with create_transport(settings) as publisher, create_transport(settings) as consumer:
        async def drain() -> None:
            while len(latencies) < count:
                for message in await consumer.receive(sink, max_messages=10, wait_seconds=1.0):
                    payload = json.loads(message.body)["payload"]
                    latencies.append((time.time() - payload["t0"]) / (len(STAGES) + 1))
                    await consumer.ack(message)

        sink_task = asyncio.create_task(drain())
        started = time.monotonic()
        for i in range(count):
            body = env.dumps(env.make_envelope(STAGES, {"i": i, "t0": time.time()}))
            await publisher.send(first, body)
            if rate:
                await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
        await asyncio.wait_for(sink_task, timeout=600)
        return time.monotonic() - started, latencies


async def _measure(settings: TransportSettings, throughput_n: int, latency_n: int, rate: float) -> dict:
    elapsed, _ = await _drive(settings, throughput_n, None)
    _, latencies = await _drive(settings, latency_n, rate)
    return {"hops_per_s": len(STAGES) * throughput_n / elapsed, **latency_percentiles(latencies)}


async def run_sidecar(settings: TransportSettings, concurrency: int, throughput_n: int, latency_n: int,
                      rate: float) -> dict:
    """The pipeline with a real sidecar + runtime per stage."""
    await _reset_queues(settings)
    state = Path(tempfile.mkdtemp(prefix="asya-bench-"))
    specs = [ActorSpec(name, HERE / "handlers.py",
                       runtime_env={"ASYA_ACTOR_NAME": name, "ASYA_HANDLER": "handlers.noop",
                                    "ASYA_CONCURRENCY": str(concurrency)},
                       sidecar_env={"ASYA_ACTOR_NAME": name, "ASYA_CONCURRENCY": str(concurrency),
                                    }) for name in STAGES]
    with open(os.devnull, "w") as quiet:
        mesh = DevMesh(specs, settings, state, dict(os.environ), out=quiet, with_crew=False)
        task = asyncio.create_task(mesh.run())
        while not all(p.state == "up" for p in mesh.processes) or not all(
                "sidecar ready" in (state / "logs" / f"{n}.sidecar.log").read_text(errors="replace")
                for n in STAGES if (state / "logs" / f"{n}.sidecar.log").exists()):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        try:
            return await _measure(settings, throughput_n, latency_n, rate)
        finally:
            mesh.stop()
            await task


async def run_relay(settings: TransportSettings, concurrency: int, throughput_n: int, latency_n: int,
                    rate: float) -> dict:
    """The same pipeline with bare relay processes instead of sidecars."""
    await _reset_queues(settings)
    queues = [env.queue_name(n, settings.queue_prefix) for n in [*STAGES, SINK]]
    child_env = {**os.environ, **to_env(settings), "PYTHONPATH": str(HERE.parent)}
    stages = [subprocess.Popen([sys.executable, "-m", "benchmarks.relay_stage", src, dst, str(concurrency)],
                               env=child_env) for src, dst in zip(queues, queues[1:])]
    try:
        await asyncio.sleep(1.0)
        return await _measure(settings, throughput_n, latency_n, rate)
    finally:
        for stage in stages:
            stage.terminate()
        for stage in stages:
            stage.wait(timeout=30)


def sqlite_settings() -> TransportSettings:
    """A fresh embedded queue database for one benchmark run."""
    return replace(TransportSettings(), sqlite_path=str(Path(tempfile.mkdtemp(prefix="asya-bench-q-")) / "q.sqlite3"))
