"""`make bench`: the pipeline benchmark table, sidecar vs bare relay, per transport and concurrency.

Usage: ``python -m benchmarks.run [--transports sqlite,rabbitmq] [-n 2000] [--latency-n 200] [--rate 50]``.
Broker transports use the ASYA_* connection env (e.g. ASYA_RABBITMQ_URL) and are skipped, with a
note, when their server is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace

from asya_common.settings import load_settings
from asya_common.transport import TransportError, TransportSettings, create_transport
from benchmarks.pipeline import run_relay, run_sidecar, sqlite_settings


async def _reachable(settings: TransportSettings) -> str | None:
    try:
        async with create_transport(settings) as transport:
            await asyncio.wait_for(transport.ensure_queue(__import__("asya_common.transport", fromlist=["QueueSpec"])
                                                          .QueueSpec("asya-bench-probe")), 10)
        return None
    except (TransportError, OSError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - report any failure
        return f"{type(exc).__name__}: {exc}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transports", default="sqlite")
    parser.add_argument("-n", type=int, default=2000, help="envelopes in the throughput run")
    parser.add_argument("--latency-n", type=int, default=200, help="envelopes in the paced latency run")
    parser.add_argument("--rate", type=float, default=50.0, help="paced latency run: envelopes per second")
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    rows = []
    for kind in args.transports.split(","):
        base = sqlite_settings() if kind == "sqlite" else replace(load_settings(TransportSettings, dict(os.environ)),
                                                                   kind=kind)
        problem = None if kind == "sqlite" else await _reachable(base)
        if problem:
            print(f"{kind}: skipped, broker not reachable ({problem})")
            continue
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            settings = sqlite_settings() if kind == "sqlite" else base
            relay = await run_relay(settings, concurrency, args.n, args.latency_n, args.rate)
            settings = sqlite_settings() if kind == "sqlite" else base
            sidecar = await run_sidecar(settings, concurrency, args.n, args.latency_n, args.rate)
            rows.append((kind, concurrency, sidecar, relay))
            _print_row(*rows[-1], header=len(rows) == 1)


def _print_row(kind, concurrency, sidecar, relay, header=False):
    if header:
        print(f"{'transport':<10} {'conc':>4} | {'sidecar hops/s':>14} {'relay hops/s':>12} {'ratio':>6} | "
              f"{'sidecar p50/p99 ms':>18} {'relay p50/p99 ms':>16} {'p50 +ms':>8}")
    print(f"{kind:<10} {concurrency:>4} | {sidecar['hops_per_s']:>14.0f} {relay['hops_per_s']:>12.0f} "
          f"{sidecar['hops_per_s'] / relay['hops_per_s']:>5.2f}x | "
          f"{sidecar['p50_ms']:>8.1f}/{sidecar['p99_ms']:<9.1f} {relay['p50_ms']:>7.1f}/{relay['p99_ms']:<8.1f} "
          f"{sidecar['p50_ms'] - relay['p50_ms']:>8.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
