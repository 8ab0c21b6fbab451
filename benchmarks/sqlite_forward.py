"""One SQLite transport relaying queue a to queue b: ``send_many`` then ``ack`` against ``forward``, interleaved.

``python -m benchmarks.sqlite_forward [-n 3000] [--rounds 3] [--workers 1,8]``

This is the transport's share of a hop on the embedded queue, without the sidecar and the runtime around
it: W workers of one process each receive one message, publish it unchanged to ``b`` and settle it, either
as two writes (``send_many`` then ``ack``, what the sidecar did before ``Transport.forward``) or as one
(``forward``: the insert and the delete in one commit). It prints the process's CPU µs per message (user +
system of every thread, load-independent) and messages per second, median [min-max] over the rounds; the
order of the two variants alternates each round, and each run starts on a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from asya_common.transport import QueueSpec, TransportSettings, create_transport

VARIANTS = ("send_many+ack", "forward")


async def one_run(variant: str, n: int, workers: int) -> tuple[float, float]:
    """CPU µs per message and messages per second of one relay of ``n`` 1 KB messages."""
    path = Path(tempfile.mkdtemp(prefix="asya-fwd-")) / "q.db"
    async with create_transport(TransportSettings(kind="sqlite", sqlite_path=str(path))) as transport:
        for name in ("a", "b"):
            await transport.ensure_queue(QueueSpec(name, f"{name}-dlq"))
        await transport.send_many("a", [b"x" * 1000] * n)
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < n:
                for message in await transport.receive("a", max_messages=1, wait_seconds=0.2):
                    if variant == "forward":
                        await transport.forward(message, "b", [message.body])
                    else:
                        await transport.send_many("b", [message.body])
                        await transport.ack(message)
                    done += 1

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if (await transport.depth("b")).total != n or (await transport.depth("a")).total != 0:
            raise RuntimeError("the relay lost or duplicated messages")
    return cpu / n * 1e6, n / wall


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,8")
    args = parser.parse_args()
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for round_no in range(args.rounds):
        for workers in (int(w) for w in args.workers.split(",")):
            for variant in VARIANTS if round_no % 2 == 0 else reversed(VARIANTS):
                results.setdefault((workers, variant), []).append(await one_run(variant, args.n, workers))
    print("| workers | variant | CPU µs per message | messages/s |\n|---|---|---|---|")
    for (workers, variant), runs in sorted(results.items(), key=lambda kv: (kv[0][0], VARIANTS.index(kv[0][1]))):
        print(f"| {workers} | {variant} | {_fmt([r[0] for r in runs])} | {_fmt([r[1] for r in runs])} |")


if __name__ == "__main__":
    asyncio.run(main())
