"""The 3-actor no-op pipeline on the embedded SQLite queue, this tree against another checkout, interleaved.

``python -m benchmarks.sqlite_compare --baseline /tmp/before [-n 2000] [--rounds 3] [--concurrency 1,8]``

Per system and round (the order rotates each round): a fresh queue database, a sidecar + runtime per
stage started like ``asya dev`` does (``--baseline``: the other checkout's packages first on the
children's PYTHONPATH, for every process of that system), N envelopes sent one by one as
``benchmarks.pipeline`` does, and the bench drains the sink. It prints hops/s (3 N / time to the last
arrival), CPU ms per envelope per stage of the sidecars and of the runtimes (user + system from /proc,
load-independent) and the lost and duplicated envelopes counted at the sink; then the median and
range of each over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from asya_cli.dev import DevMesh
from asya_cli.values import ActorSpec
from asya_common import envelope as env
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from benchmarks import procstat

HERE = Path(__file__).resolve().parent
STAGES = ["bench-a", "bench-b", "bench-c"]
_ROOTS = ("python/asya_common", "images/runtime", "images/sidecar", "python/asya_cli")


async def one_run(tree: str | None, concurrency: int, n: int, synchronous: str = "NORMAL") -> dict:
    """One system, one round: hops/s, CPU ms per envelope per stage (sidecar, runtime), lost, duplicated."""
    settings = replace(TransportSettings(), sqlite_path=str(Path(tempfile.mkdtemp(prefix="asya-sqlcmp-")) / "q.db"))
    if synchronous != "NORMAL":  # a field the baseline tree may not know: only set when asked for
        settings = replace(settings, sqlite_synchronous=synchronous)
    queues = [env.queue_name(name, settings.queue_prefix) for name in [*STAGES, env.HAPPY_END]]
    async with create_transport(settings) as transport:
        for name in [*STAGES, env.HAPPY_END]:
            await transport.ensure_queue(QueueSpec(env.queue_name(name, settings.queue_prefix),
                                                   env.dlq_name(name, settings.queue_prefix)))
    state = Path(tempfile.mkdtemp(prefix="asya-sqlcmp-state-"))
    conc = {"ASYA_CONCURRENCY": str(concurrency)}
    specs = [ActorSpec(name, HERE / "handlers.py",
                       runtime_env={"ASYA_ACTOR_NAME": name, "ASYA_HANDLER": "handlers.noop", **conc},
                       sidecar_env={"ASYA_ACTOR_NAME": name, **conc}) for name in STAGES]
    base_env = dict(os.environ)
    if tree:
        roots = [str(Path(tree) / p) for p in _ROOTS]
        base_env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [os.environ.get("PYTHONPATH")])])
    with open(os.devnull, "w") as quiet:
        mesh = DevMesh(specs, settings, state, base_env, out=quiet, with_crew=False)
        task = asyncio.create_task(mesh.run())
        try:
            deadline = time.monotonic() + 120
            while not all(p.state == "up" and p.process is not None for p in mesh.processes) or not all(
                    "sidecar ready" in (state / "logs" / f"{s}.sidecar.log").read_text(errors="replace")
                    for s in STAGES if (state / "logs" / f"{s}.sidecar.log").exists()):
                if task.done() or time.monotonic() > deadline:
                    raise RuntimeError(f"mesh did not come up ({mesh.fatal or 'timeout'}; logs in {state})")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            pids = {role: [p.process.pid for p in mesh.processes if p.role == role] for role in ("sidecar", "runtime")}
            cpu0 = {role: sum(procstat.cpu_seconds(pid) for pid in ps) for role, ps in pids.items()}
            arrivals: Counter = Counter()
            async with create_transport(settings) as publisher, create_transport(settings) as consumer:
                async def drain() -> None:
                    while sum(arrivals.values()) < n:
                        for message in await consumer.receive(queues[-1], max_messages=10, wait_seconds=1.0):
                            arrivals[json.loads(message.body)["payload"]["i"]] += 1
                            await consumer.ack(message)

                sink = asyncio.create_task(drain())
                started = time.monotonic()
                for i in range(n):
                    await publisher.send(queues[0], env.dumps(env.make_envelope(STAGES, {"i": i})))
                await asyncio.wait_for(sink, timeout=600)
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.0)  # anything duplicated late still arrives
                for message in await consumer.receive(queues[-1], max_messages=100, wait_seconds=0.2):
                    arrivals[json.loads(message.body)["payload"]["i"]] += 1
            cpu1 = {role: sum(procstat.cpu_seconds(pid) for pid in ps) for role, ps in pids.items()}
        finally:
            mesh.stop()
            await task
    return {"hops_per_s": len(STAGES) * n / elapsed,
            "sidecar_ms": (cpu1["sidecar"] - cpu0["sidecar"]) * 1000 / (n * len(STAGES)),
            "runtime_ms": (cpu1["runtime"] - cpu0["runtime"]) * 1000 / (n * len(STAGES)),
            "lost": sum(1 for i in range(n) if arrivals[i] == 0),
            "dup": sum(c - 1 for c in arrivals.values() if c > 1)}


def _med(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=None, help="checkout whose packages the 'before' systems run")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--full", action="store_true", help="also this tree with ASYA_SQLITE_SYNCHRONOUS=FULL")
    args = parser.parse_args()
    variants = ([("before", args.baseline)] if args.baseline else []) + [("after", None)] + (
        [("after FULL", None)] if args.full else [])
    systems = [(label, tree, int(c)) for c in args.concurrency.split(",") for label, tree in variants]
    results: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for label, tree, conc in order:
            row = await one_run(tree, conc, args.n, "FULL" if label.endswith("FULL") else "NORMAL")
            name = f"{label} c{conc}"
            results.setdefault(name, []).append(row)
            print(f"round {r + 1} {name:<10} {row['hops_per_s']:7.0f} hops/s  sidecar {row['sidecar_ms']:.2f} ms  "
                  f"runtime {row['runtime_ms']:.2f} ms  lost {row['lost']} dup {row['dup']}", flush=True)
    print("\n| system | hops/s | sidecar CPU ms/env/stage | runtime CPU ms/env/stage | lost | dup |")
    print("|---|---|---|---|---|---|")
    for label, tree, conc in systems:
        rows = results[f"{label} c{conc}"]
        print(f"| {label} c{conc} | {_med([x['hops_per_s'] for x in rows], '{:.0f}')} | "
              f"{_med([x['sidecar_ms'] for x in rows], '{:.2f}')} | {_med([x['runtime_ms'] for x in rows], '{:.2f}')} "
              f"| {sum(x['lost'] for x in rows)} | {sum(x['dup'] for x in rows)} |")


if __name__ == "__main__":
    asyncio.run(main())
