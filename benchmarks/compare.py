"""Our 3-actor pipeline against what users would pick instead, on one RabbitMQ, in the same run.

Systems (each a 3-stage no-op pipeline, quorum queues, persistent messages, publisher confirms and
ack only after the confirmed publish):

* ``asya cN``: our sidecar + runtime per stage (``asya dev`` processes), ``ASYA_CONCURRENCY=N``;
* ``image cN``: the same on the sidecar image's Python version with only the packages its Dockerfile
  installs (``benchmarks.image_python``): the memory and CPU a deployed sidecar has;
* ``relay pN``: a bare aio-pika relay per stage (``benchmarks.pika_stage``), prefetch N;
* ``celery``: a Celery chain ``a | b | c | sink``, one prefork worker ``-c 1`` per queue
  (``benchmarks.celery_chain``; skipped with a reason when Celery is not installed).

Per system and round: throughput (N envelopes published at once, 3 N / time to the last arrival),
per-hop p50/p99 at paced rates (arrival - publish over 4 queue hops), CPU ms per envelope per stage
from /proc (user + system of each process and its children; load-independent), RSS, and lost and
duplicated envelopes (counted at the sink over every phase). Rounds are interleaved (the order
rotates each round); the table gives the median and the range. Payloads are ~1 KB.

``python -m benchmarks.compare [-n 2000] [--rounds 3] [--rates 50,250] [--systems ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import aio_pika

from asya_common.settings import load_settings
from asya_common.transport import TransportSettings
from benchmarks import procstat
from benchmarks.image_python import image_python
from benchmarks.stats import latency_percentiles
from benchmarks.systems import STAGES, Running, _url, asya, celery, relay

HOPS = len(STAGES) + 1  # publish -> a -> b -> c -> sink


@dataclass
class Sink:
    """Counts every arrival at the sink queue by (phase, index)."""

    arrivals: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, tuple[int, asyncio.Event]] = field(default_factory=dict)

    def on_body(self, payload: dict) -> None:
        phase, now = payload["phase"], time.time()
        self.arrivals[(phase, payload["i"])] += 1
        self.latencies.setdefault(phase, []).append((now - payload["t0"]) / HOPS)
        self.last[phase] = time.monotonic()
        want = self.waiting.get(phase)
        if want and len(self.latencies[phase]) >= want[0]:
            want[1].set()


# -- measuring -------------------------------------------------------------------------------------

async def _consumers_ready(connection, queues: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = []
        for name in queues:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                counts.append(queue.declaration_result.consumer_count)
            except Exception:  # noqa: BLE001 - not declared yet
                counts.append(0)
            finally:
                if not channel.is_closed:
                    await channel.close()
        if all(counts):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"stages did not start consuming {queues} within {timeout:.0f}s")


async def _phase(running: Running, sink: Sink, phase: str, count: int, rate: float | None,
                 timeout: float) -> float | None:
    """Sends ``count`` envelopes (at once, or paced at ``rate``/s); returns seconds to the last arrival."""
    done = asyncio.Event()
    sink.waiting[phase] = (count, done)
    started = time.monotonic()
    if rate:
        for i in range(count):
            await running.publish(i, time.time(), phase)
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    else:
        for start in range(0, count, 200):
            await asyncio.gather(*(running.publish(i, time.time(), phase) for i in range(start, min(count, start + 200))))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        return None
    return sink.last[phase] - started


async def measure(system: str, make: Callable[[], Any], connection, n: int, latency_n: int,
                  rates: list[float]) -> dict[str, Any]:
    """Runs one system once: warm-up, throughput with CPU and RSS, paced latency, loss count."""
    sink = Sink()
    row: dict[str, Any] = {"system": system}
    async with make() as running:
        await _consumers_ready(connection, running.stages)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(running.sink)

        async def on_message(message) -> None:
            sink.on_body(running.decode(message.body))

        tag = await queue.consume(on_message, no_ack=True)
        sent: dict[str, int] = {}
        try:
            sent["warmup"] = 30
            await _phase(running, sink, "warmup", 30, None, 120)
            before = {role: [procstat.cpu_seconds(pid) for pid in pids] for role, pids in running.groups.items()}
            sent["throughput"] = n
            elapsed = await _phase(running, sink, "throughput", n, None, max(300, n / 2))
            after = {role: [procstat.cpu_seconds(pid) for pid in pids] for role, pids in running.groups.items()}
            row["rss_mb"] = {role: max(procstat.rss_mb(pid) for pid in pids) for role, pids in running.groups.items()}
            row["hops_per_s"] = len(STAGES) * n / elapsed if elapsed else float("nan")
            row["cpu_ms"] = {role: 1000 * (sum(after[role]) - sum(before[role])) / (len(STAGES) * n)
                             for role in running.groups}
            for rate in rates:
                phase = f"rate{rate:g}"
                sent[phase] = latency_n if rate <= 100 else int(latency_n * rate / 100)
                await _phase(running, sink, phase, sent[phase], rate, 120)
                row[phase] = latency_percentiles(sink.latencies.get(phase, []))
            await asyncio.sleep(1.0)  # late duplicates still count
        finally:
            await queue.cancel(tag)
            await channel.close()
    unique = Counter(phase for phase, _ in sink.arrivals)
    row["lost"] = sum(count - unique.get(phase, 0) for phase, count in sent.items())
    row["duplicated"] = sum(sink.arrivals.values()) - sum(unique.values())
    return row


SYSTEMS: dict[str, Callable[[TransportSettings, Any], Any]] = {
    "asya c1": lambda s, c: asya(s, c, 1),
    "asya c8": lambda s, c: asya(s, c, 8),
    "asya default": lambda s, c: asya(s, c, 0),
    "relay p1": lambda s, c: relay(s, c, 1),
    "relay p8": lambda s, c: relay(s, c, 8),
    "celery": lambda s, c: celery(s, c),
    "aiormq p1": lambda s, c: relay(s, c, 1, "benchmarks.aiormq_stage"),
    "aiormq p8": lambda s, c: relay(s, c, 8, "benchmarks.aiormq_stage"),
}
BASELINE_TREE: str | None = None  # --baseline: "before c1"/"before c8" run our processes from that checkout
SYSTEMS.update({f"before c{n}": (lambda n: lambda s, c: asya(s, c, n, BASELINE_TREE))(n) for n in (1, 8)})
SYSTEMS["before default"] = lambda s, c: asya(s, c, 0, BASELINE_TREE)
# "image cN": this tree on the sidecar image's Python and packages only (benchmarks/image_python.py)
SYSTEMS.update({f"image c{n}": (lambda n: lambda s, c: asya(s, c, n, python=image_python()))(n)
                for n in (1, 8)})


def system(name: str) -> Callable[[TransportSettings, Any], Any]:
    """A system by name: one of :data:`SYSTEMS`, or ``asya cN pM`` / ``before cN pM`` (concurrency N, prefetch M)."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    match = re.fullmatch(r"(asya|before) c(\d+) p(\d+)", name)
    if not match:
        raise SystemExit(f"unknown system {name!r}: one of {', '.join(SYSTEMS)}, or 'asya cN pM'")
    tree = BASELINE_TREE if match[1] == "before" else None
    return lambda s, c: asya(s, c, int(match[2]), tree, prefetch=int(match[3]))


async def compare(settings: TransportSettings, systems: list[str], n: int, latency_n: int, rates: list[float],
                  rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Interleaved rounds over ``systems``; returns every row per system."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    connection = await aio_pika.connect(_url(settings))
    async with connection:
        for round_no in range(rounds):
            order = systems[round_no % len(systems):] + systems[:round_no % len(systems)]
            for name in order:
                try:
                    row = await measure(name, lambda: system(name)(settings, connection), connection, n, latency_n,
                                        rates)
                except Exception as exc:  # noqa: BLE001 - one failed system is reported, the others still run
                    print(f"  round {round_no + 1} {name}: failed ({type(exc).__name__}: {exc})", flush=True)
                    continue
                results[name].append(row)
                print(f"  round {round_no + 1} {name:<12} {row['hops_per_s']:6.0f} hops/s  cpu ms/env/stage "
                      f"{_cpu_text(row)}  lost {row['lost']} dup {row['duplicated']}", flush=True)
    return results


def _cpu_text(row: dict[str, Any]) -> str:
    return " + ".join(f"{role} {ms:.2f}" for role, ms in row["cpu_ms"].items())


def _med(values: list[float], fmt: str = "{:.0f}") -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    text = fmt.format(statistics.median(values))
    return text if len(values) == 1 else f"{text} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def report(results: dict[str, list[dict[str, Any]]], rates: list[float]) -> str:
    """The comparison table (medians with [min-max]) and the ratios the targets are stated in."""
    lines = [f"| system | hops/s | {' | '.join(f'hop p50/p99 ms at {r:g}/s' for r in rates)} | "
             "CPU ms per envelope per stage | RSS MB | lost | dup |",
             "|---|---|" + "---|" * len(rates) + "---|---|---|---|"]
    for name, rows in results.items():
        if not rows:
            lines.append(f"| {name} | failed |" + " |" * (len(rates) + 4))
            continue
        lat = " | ".join(f"{_med([r[f'rate{x:g}']['p50_ms'] for r in rows], '{:.1f}')} / "
                         f"{_med([r[f'rate{x:g}']['p99_ms'] for r in rows], '{:.1f}')}" for x in rates)
        roles = rows[0]["cpu_ms"]
        cpu = " + ".join(f"{role} {_med([r['cpu_ms'][role] for r in rows], '{:.2f}')}" for role in roles)
        total = _med([sum(r["cpu_ms"].values()) for r in rows], "{:.2f}")
        rss = ", ".join(f"{role} {_med([r['rss_mb'][role] for r in rows], '{:.1f}')}" for role in roles)
        lines.append(f"| {name} | {_med([r['hops_per_s'] for r in rows])} | {lat} | {cpu} (= {total}) | {rss} | "
                     f"{sum(r['lost'] for r in rows)} | {sum(r['duplicated'] for r in rows)} |")
    med = {name: statistics.median([r["hops_per_s"] for r in rows]) for name, rows in results.items() if rows}
    for side in ("asya", "before"):  # ASYA_CONCURRENCY defaults to 1: "default" is the c1 row when not run apart
        if f"{side} default" not in med and f"{side} c1" in med:
            med[f"{side} default"] = med[f"{side} c1"]
    ratios = [("asya c8", "before c8"), ("asya c1", "before c1"), ("image c8", "relay p8"),
              ("asya c8", "relay p8"), ("asya default", "relay p1"), ("asya default", "celery"),
              ("asya c8", "celery")]
    lines.append("")
    for ours, theirs in ratios:
        if ours in med and theirs in med:
            lines.append(f"throughput {ours} / {theirs}: {med[ours] / med[theirs]:.2f}x")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="envelopes in each throughput run")
    parser.add_argument("--latency-n", type=int, default=200, help="envelopes per paced run at 100/s (scaled by rate)")
    parser.add_argument("--rates", default="50,250", help="paced rates in envelopes per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--systems", default="asya c1,asya c8,image c8,relay p1,relay p8,celery",
                        help="also: 'asya default' (no ASYA_CONCURRENCY set), 'image c1', 'aiormq p1/p8', "
                             "'before c1/c8/default' (--baseline)")
    parser.add_argument("--baseline", default=None,
                        help="a checkout (e.g. `git archive` of an older commit) measured as 'before cN' systems")
    args = parser.parse_args(argv)
    global BASELINE_TREE
    BASELINE_TREE = args.baseline
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    try:
        import celery as _celery  # noqa: F401
    except ImportError:
        if "celery" in systems:
            print("celery: skipped (not installed; `make bench` installs it)")
            systems.remove("celery")
    rates = [float(r) for r in args.rates.split(",")]
    server = None
    settings = replace(load_settings(TransportSettings, dict(os.environ)), kind="rabbitmq")
    if not os.environ.get("ASYA_RABBITMQ_URL"):
        from tests.support.brokers import start_local

        try:
            server, local = start_local("rabbitmq", Path(tempfile.mkdtemp(prefix="asya-cmp-rabbitmq-")))
        except Exception as exc:  # noqa: BLE001 - no local RabbitMQ (laptop without it): report and skip
            print(f"comparison: skipped, could not start a local RabbitMQ ({type(exc).__name__}: {exc}); "
                  "set ASYA_RABBITMQ_URL to use a running one")
            return
        settings = replace(local, queue_prefix=settings.queue_prefix)
    try:
        print(f"comparison on RabbitMQ: {args.rounds} interleaved rounds, n={args.n}, rates {args.rates}/s", flush=True)
        results = await compare(settings, systems, args.n, args.latency_n, rates, args.rounds)
        print(report(results, rates), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
