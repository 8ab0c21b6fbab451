"""Where a hop's CPU goes: py-spy samples of one sidecar and one runtime under the pipeline benchmark.

``python -m benchmarks.profile [-n 3000] [--concurrency 8] [--out DIR]`` starts our 3-stage pipeline on
the local RabbitMQ (as ``benchmarks.compare`` does), records the middle stage's sidecar and runtime
with ``py-spy record --format raw`` while N envelopes go through, and prints the top functions by
self time and by inclusive time (share of samples) for each. The raw collapsed stacks are kept in
``--out`` for flame graphs (``flamegraph.pl`` or speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import aio_pika

from asya_common.settings import load_settings
from asya_common.transport import TransportSettings
from benchmarks import compare


def top(collapsed: Path, limit: int = 15) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive) shares of samples per function from py-spy's raw collapsed stacks."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = lambda c: [(name, 100.0 * v / max(total, 1)) for name, v in c.most_common(limit)]  # noqa: E731
    return share(own), share(inclusive)


def print_top(label: str, collapsed: Path, limit: int = 15) -> None:
    """Prints the top functions of one process's raw stacks, by self and by inclusive time."""
    own, inclusive = top(collapsed, limit)
    print(f"\n{label}: top self time (% of samples)")
    for name, pct in own:
        print(f"  {pct:5.1f}%  {name}")
    print(f"{label}: top inclusive time")
    for name, pct in inclusive:
        print(f"  {pct:5.1f}%  {name}")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default=None, help="folder for the raw stacks (a temp dir when omitted)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="asya-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    from tests.support.brokers import start_local

    server, local = start_local("rabbitmq", Path(tempfile.mkdtemp(prefix="asya-prof-rabbitmq-")))
    settings = replace(local, queue_prefix=load_settings(TransportSettings, dict(os.environ)).queue_prefix)
    try:
        connection = await aio_pika.connect(compare._url(settings))
        async with connection:
            sink = compare.Sink()
            async with compare.asya(settings, connection, args.concurrency) as running:
                await compare._consumers_ready(connection, running.stages)
                channel = await connection.channel()
                queue = await channel.get_queue(running.sink)
                await queue.consume(lambda m: sink.on_body(running.decode(m.body)), no_ack=True)
                await compare._phase(running, sink, "warmup", 50, None, 120)
                targets = {"sidecar": running.groups["sidecar"][1], "runtime": running.groups["runtime"][1]}
                recorders = {role: subprocess.Popen([pyspy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                                                     "250", "--nonblocking", "-o", str(out / f"{role}.txt")],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                             for role, pid in targets.items()}
                await asyncio.sleep(1.0)
                elapsed = await compare._phase(running, sink, "throughput", args.n, None, 600)
                for recorder in recorders.values():
                    recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
                for recorder in recorders.values():
                    recorder.wait(timeout=60)
                await channel.close()
        print(f"{args.n} envelopes at concurrency {args.concurrency} in {elapsed:.1f}s; raw stacks in {out}")
        for role in targets:
            print_top(role, out / f"{role}.txt")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
