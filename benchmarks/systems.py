"""The systems the comparison runs, each a 3-stage no-op pipeline on one RabbitMQ.

* :func:`asya`: our sidecar + runtime per stage (started like ``asya dev``), optionally from another
  checkout (``tree``) for before/after rounds in the same run;
* :func:`relay`: a bare aio-pika relay per stage (``benchmarks.pika_stage``);
* :func:`celery`: a Celery chain, one prefork worker ``-c 1`` per stage (``benchmarks.celery_chain``).

Each is an async context manager yielding :class:`Running`: how to publish one envelope, which queue
the results land in, how to read a result, and the pids whose CPU is counted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aio_pika

from asya_common import envelope as env
from asya_common.transport import TransportSettings

HERE = Path(__file__).resolve().parent
STAGES = ["bench-a", "bench-b", "bench-c"]
PAD = "x" * 900  # ~1 KB envelopes


@dataclass
class Running:
    """A started system: how to publish, where its output lands, which processes do the work."""

    publish: Callable[[int, float, str], Awaitable[None]]
    sink: str
    decode: Callable[[bytes], dict]
    groups: dict[str, list[int]]  # role -> pids (each pid with its children)
    stages: list[str]


# -- systems ---------------------------------------------------------------------------------------

def _url(settings: TransportSettings) -> str:
    base, _, query = settings.rabbitmq_url.partition("?")
    kept = "&".join(p for p in query.split("&") if p and not p.startswith("management_port="))
    return f"{base}?{kept}" if kept else base


async def _reset(settings: TransportSettings) -> list[str]:
    from asya_common.transport import QueueSpec, create_transport

    names = [*STAGES, env.HAPPY_END]
    async with create_transport(settings) as transport:
        for name in names:
            queue, dlq = env.queue_name(name, settings.queue_prefix), env.dlq_name(name, settings.queue_prefix)
            await transport.delete_queue(queue)
            await transport.delete_queue(dlq)
            await transport.ensure_queue(QueueSpec(queue, dlq))
    return [env.queue_name(n, settings.queue_prefix) for n in names]


def _envelope_body(i: int, t0: float, phase: str) -> bytes:
    return env.dumps(env.make_envelope(STAGES, {"i": i, "t0": t0, "phase": phase, "pad": PAD}))


def _envelope_payload(body: bytes) -> dict:
    return json.loads(body)["payload"]


@asynccontextmanager
async def _exchange_publisher(connection, settings: TransportSettings, first: str):
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(settings.rabbitmq_exchange)

    async def publish(i: int, t0: float, phase: str) -> None:
        await exchange.publish(aio_pika.Message(_envelope_body(i, t0, phase),
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                               routing_key=first, mandatory=True)
    try:
        yield publish
    finally:
        await channel.close()


@asynccontextmanager
async def asya(settings: TransportSettings, connection, concurrency: int,
               tree: str | None = None, prefetch: int = 0, python: str | None = None) -> AsyncIterator[Running]:
    """Our pipeline: a sidecar + runtime per stage, started like ``asya dev`` does.

    ``tree``: another checkout's packages (``--baseline``) put first on the children's PYTHONPATH.
    ``python``: the children's interpreter (``benchmarks.image_python`` for ``image cN``).
    """
    from asya_cli.dev import DevMesh
    from asya_cli.values import ActorSpec

    queues = await _reset(settings)
    state = Path(tempfile.mkdtemp(prefix="asya-cmp-"))
    conc = {"ASYA_CONCURRENCY": str(concurrency)} if concurrency else {}  # 0: the defaults
    held = {"ASYA_PREFETCH": str(prefetch)} if prefetch else {}  # 0: the sidecar's default
    specs = [ActorSpec(name, HERE / "handlers.py",
                       runtime_env={"ASYA_ACTOR_NAME": name, "ASYA_HANDLER": "handlers.noop", **conc},
                       sidecar_env={"ASYA_ACTOR_NAME": name, **conc, **held}) for name in STAGES]
    with open(os.devnull, "w") as quiet:
        base_env = dict(os.environ)
        if tree:
            roots = [Path(tree) / p for p in ("python/asya_common", "images/runtime", "images/sidecar",
                                              "python/asya_cli")]
            base_env["PYTHONPATH"] = os.pathsep.join([*map(str, roots), *filter(None, [os.environ.get("PYTHONPATH")])])
        mesh = DevMesh(specs, settings, state, base_env, out=quiet, with_crew=False,
                       python=python or sys.executable)
        task = asyncio.create_task(mesh.run())
        try:
            deadline = time.monotonic() + 120
            while not all(p.state == "up" and p.process is not None for p in mesh.processes):
                if task.done() or time.monotonic() > deadline:
                    raise RuntimeError(f"asya dev mesh did not come up ({mesh.fatal or 'timeout'}; logs in {state})")
                await asyncio.sleep(0.1)
            async with _exchange_publisher(connection, settings, queues[0]) as publish:
                yield Running(publish, queues[-1], _envelope_payload,
                              {role: [p.process.pid for p in mesh.processes if p.role == role]
                               for role in ("sidecar", "runtime")}, queues[:-1])
        finally:
            mesh.stop()
            await task


@asynccontextmanager
async def relay(settings: TransportSettings, connection, prefetch: int,
                module: str = "benchmarks.pika_stage") -> AsyncIterator[Running]:
    """Bare relay stages over the same queues: aio-pika (``pika_stage``) or plain aiormq (``aiormq_stage``)."""
    queues = await _reset(settings)
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(HERE.parent),
                                                                          os.environ.get("PYTHONPATH")) if p)}
    stages = [subprocess.Popen([sys.executable, "-m", module, _url(settings),
                                settings.rabbitmq_exchange, src, dst, str(prefetch)], env=child_env)
              for src, dst in zip(queues, queues[1:])]
    try:
        async with _exchange_publisher(connection, settings, queues[0]) as publish:
            yield Running(publish, queues[-1], _envelope_payload, {"stage": [s.pid for s in stages]}, queues[:-1])
    finally:
        for stage in stages:
            stage.terminate()
        for stage in stages:
            stage.wait(timeout=30)


@asynccontextmanager
async def celery(settings: TransportSettings, connection) -> AsyncIterator[Running]:
    """The Celery chain, one prefork worker (-c 1) per stage queue."""
    os.environ["ASYA_BENCH_CELERY_BROKER"] = _url(settings)
    os.environ["ASYA_BENCH_CELERY_CLIENT"] = "1"  # read at import: the bench's own publishing skips confirms
    from benchmarks import celery_chain

    channel = await connection.channel()
    for name in celery_chain.QUEUES:
        await channel.queue_delete(name)
    sink = await channel.declare_queue(celery_chain.QUEUES[-1], durable=True, arguments={"x-queue-type": "quorum"})
    await channel.close()
    worker_env = {k: v for k, v in os.environ.items() if k != "ASYA_BENCH_CELERY_CLIENT"}
    worker_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)
    log = open(Path(tempfile.mkdtemp(prefix="asya-cmp-celery-")) / "workers.log", "w")  # root and quorum warnings
    workers = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "benchmarks.celery_chain", "worker",
                                 "-Q", queue, "-c", "1", "-P", "prefork", "-n", f"{queue}@%h", "--loglevel", "WARNING",
                                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                                env=worker_env, stdout=log, stderr=log)
               for queue in celery_chain.QUEUES[:-1]]

    sender = concurrent.futures.ThreadPoolExecutor(1)  # kombu is blocking: publish off the event loop, in order

    async def publish(i: int, t0: float, phase: str) -> None:
        await asyncio.get_running_loop().run_in_executor(
            sender, celery_chain.send, {"i": i, "t0": time.time() if phase != "throughput" else t0, "phase": phase,
                                        "pad": PAD})

    try:
        yield Running(publish, sink.name, lambda body: json.loads(body)[0][0], {"worker": [w.pid for w in workers]},
                      celery_chain.QUEUES[:-1])
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        log.close()
        sender.shutdown()
