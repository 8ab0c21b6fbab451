"""`make bench`: the pipeline benchmark table, sidecar vs bare relay, per transport and concurrency.

Usage: ``python -m benchmarks.run [--transports sqlite,rabbitmq] [-n 2000] [--latency-n 200] [--rate 50]``.
It starts with the RabbitMQ comparison against a bare aio-pika relay and a Celery chain
(``benchmarks/compare.py``, ``--compare-rounds 0`` skips it).
Broker transports use the ASYA_* connection env when it is set (e.g. ASYA_RABBITMQ_URL); otherwise the
benchmark starts the same local servers the tests use (RabbitMQ from Debian, ElasticMQ, the Pub/Sub
emulator) on 127.0.0.1 and stops them afterwards. A broker that cannot be started is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from asya_common.settings import load_settings
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from benchmarks.pipeline import run_relay, run_sidecar, sqlite_settings
from benchmarks.tracing import print_rows as print_tracing, tracing_rows
from tests.support.brokers import start_local


_ENV_OF = {"rabbitmq": "ASYA_RABBITMQ_URL", "sqs": "ASYA_SQS_ENDPOINT_URL", "pubsub": "ASYA_PUBSUB_EMULATOR_HOST"}


async def _reachable(settings: TransportSettings) -> str | None:
    try:
        async with create_transport(settings) as transport:
            await asyncio.wait_for(transport.ensure_queue(QueueSpec("asya-bench-probe")), 10)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", with its reason
        return f"{type(exc).__name__}: {exc}"


async def main() -> None:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # quiet gRPC fork notices when stages are spawned
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transports", default="sqlite,rabbitmq,sqs,pubsub")
    parser.add_argument("-n", type=int, default=2000, help="envelopes in the throughput run")
    parser.add_argument("--latency-n", type=int, default=200, help="envelopes in the paced latency run")
    parser.add_argument("--rate", type=float, default=50.0, help="paced latency run: envelopes per second")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--no-tracing", action="store_true", help="skip the tracing on/off rows (benchmarks/tracing.py)")
    parser.add_argument("--gateway-backends", default="sqlite,postgres",
                        help="status stores of the gateway rows (benchmarks/gateway.py); empty = no gateway rows")
    parser.add_argument("--compare-rounds", type=int, default=3,
                        help="rounds of the RabbitMQ comparison with a bare aio-pika relay and Celery "
                             "(benchmarks/compare.py); 0 = skip it")
    args = parser.parse_args()
    if args.compare_rounds > 0:  # the headline table: ours vs bare relay vs Celery, CPU per envelope from /proc
        from benchmarks import compare

        await compare.main(["-n", str(args.n), "--rounds", str(args.compare_rounds)])
    rows = []
    for kind in args.transports.split(","):
        server = None
        base = sqlite_settings() if kind == "sqlite" else replace(load_settings(TransportSettings, dict(os.environ)),
                                                                   kind=kind)
        try:
            if kind != "sqlite" and not os.environ.get(_ENV_OF[kind]):
                try:
                    server, local = start_local(kind, Path(tempfile.mkdtemp(prefix=f"asya-bench-{kind}-")))
                except Exception as exc:  # noqa: BLE001 - any start failure is reported, then skipped
                    print(f"{kind}: skipped, could not start a local server ({type(exc).__name__}: {exc})")
                    continue
                base = replace(local, queue_prefix=base.queue_prefix)
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
        finally:
            if server is not None:
                server.stop()
    if not args.no_tracing:
        print_tracing(await tracing_rows(args.n, args.latency_n, args.rate, 1))
    if args.gateway_backends:  # FLY latency, submit throughput, submit-to-final, 1,000 SSE clients
        from benchmarks import gateway

        await asyncio.to_thread(gateway.main, ["--backends", args.gateway_backends])


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
