"""The runtime alone: CPU microseconds per call of a real runtime process, no broker, no sidecar.

``python -m benchmarks.runtime_cpu [-n 5000] [--windows 1,8] [--rounds 3] [--rate R] [--baseline TREE] [--profile DIR]``

Starts ``python -m asya_runtime`` with the pipeline benchmark's no-op handler (``benchmarks.handlers.noop``,
``ASYA_CONCURRENCY`` = W), connects over its Unix socket like a sidecar does, and keeps W ``call`` frames in
flight (a new call is sent as each answer arrives; with ``--rate``, calls are paced instead, so the
runtime wakes up for each one as in a pipeline that is not saturated) until N calls are answered. The envelope is the
pipeline's (~1 KB payload) with the headers a sidecar adds. The figure is the runtime process's user +
system CPU time from /proc (``benchmarks.procstat``) over the N calls, divided by N: it does not grow
when other programs use the cores, unlike calls per second (printed too, only meaningful when idle).

``--baseline TREE`` (a checkout, e.g. ``git archive <commit> python/asya_common images/runtime | tar -x -C
/tmp/before``) adds "before wW" rows whose runtime is imported from that tree; rounds interleave old
and new and rotate their order. ``--profile DIR`` records each measured run with py-spy (raw collapsed
stacks in DIR, top functions printed); profiled runs are slower, so read their CPU figures apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import procstat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEADER = struct.Struct(">I")
PAD = "x" * 900  # the pipeline benchmark's ~1 KB payload


def _envelope(i: int) -> dict:
    return {
        "id": f"0c6f3b1e9d7a4f0e8b2c5d6e7f8a9b{i:06d}",
        "route": {"prev": ["a"], "curr": "b", "next": ["c"]},
        "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "x-asya-attempt": 1, "x-asya-sent-at": 1764600000.123456},
        "payload": {"i": i, "t0": 1764600000.123456, "phase": "throughput", "pad": PAD},
    }


def _frame(i: int) -> bytes:
    body = json.dumps({"id": str(i), "op": "call", "envelope": _envelope(i)}, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


class Runtime:
    """One runtime process serving ``benchmarks.handlers.noop`` from ``tree`` (None: this checkout)."""

    def __init__(self, tree: str | None, concurrency: int):
        self.folder = Path(tempfile.mkdtemp(prefix="asya-rtcpu-"))
        self.socket_path = self.folder / "run" / "rt.sock"
        root = Path(tree) if tree else REPO
        path = [str(HERE), str(root / "images" / "runtime"), str(root / "python" / "asya_common")]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(path),
               "ASYA_HANDLER": "handlers.noop", "ASYA_SOCKET_PATH": str(self.socket_path),
               "ASYA_ACTOR_NAME": "b", "ASYA_CONCURRENCY": str(concurrency)}
        self.log = open(self.folder / "runtime.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "asya_runtime"], env=env, cwd=self.folder,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def connect(self, timeout: float = 30) -> socket.socket:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtime exited {self.proc.returncode}: {(self.folder / 'runtime.log').read_text()}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.socket_path))
                return sock
            except OSError:
                sock.close()
                time.sleep(0.05)
        raise TimeoutError("runtime did not listen")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def drive(sock: socket.socket, frames: list[bytes], n: int, window: int, rate: float | None = None) -> list[float]:
    """Sends ``n`` calls keeping up to ``window`` in flight; checks every answer is a ``result``.

    Returns each call's round trip in seconds (send to answer; ``window`` must stay below ``len(frames)``).

    With ``rate``, call k is not sent before ``k / rate`` seconds (arrivals spaced as in a pipeline
    that is not saturated: the runtime wakes up for each call); without it, back to back.
    """
    sent = answered = 0
    buffer = bytearray()
    start = time.monotonic()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    while sent < min(window, n) and rate is None:
        sent_at[str(sent % len(frames))] = time.perf_counter()
        sock.sendall(frames[sent % len(frames)])
        sent += 1
    while answered < n:
        if rate is not None:
            due = start + sent / rate
            while sent < n and sent - answered < window and time.monotonic() >= due:
                sent_at[str(sent % len(frames))] = time.perf_counter()
                sock.sendall(frames[sent % len(frames)])
                sent += 1
                due = start + sent / rate
            wait = due - time.monotonic() if sent < n and sent - answered < window else None
            sock.settimeout(max(wait, 1e-4) if wait is not None else None)
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
        else:
            chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("runtime closed the connection")
        buffer += chunk
        out = []
        while len(buffer) >= 4:
            (length,) = HEADER.unpack_from(buffer)
            if len(buffer) < 4 + length:
                break
            frame = json.loads(bytes(buffer[4:4 + length]))
            del buffer[:4 + length]
            if frame.get("type") != "result":
                raise RuntimeError(f"unexpected answer: {frame}")
            latencies.append(time.perf_counter() - sent_at.pop(frame["id"]))
            answered += 1
            if sent < n and rate is None:
                out.append(frames[sent % len(frames)])
                sent_at[str(sent % len(frames))] = time.perf_counter()
                sent += 1
        if out:
            sock.sendall(b"".join(out))
    return latencies


def measure(tree: str | None, window: int, n: int, warmup: int, profile: Path | None, label: str,
            rate: float | None = None) -> dict:
    """One run: a fresh runtime, ``warmup`` calls, then ``n`` measured calls."""
    runtime = Runtime(tree, window)
    recorder = None
    try:
        sock = runtime.connect()
        frames = [_frame(i) for i in range(64)]
        drive(sock, frames, warmup, window)
        if profile is not None:
            pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            out = profile / f"{label.replace(' ', '-')}.txt"
            recorder = subprocess.Popen([pyspy, "record", "--pid", str(runtime.proc.pid), "--format", "raw",
                                         "--rate", "250", "--nonblocking", "--threads", "-o", str(out)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        cpu0, t0 = procstat.cpu_seconds(runtime.proc.pid), time.monotonic()
        latencies = sorted(drive(sock, frames, n, window, rate))
        cpu1, t1 = procstat.cpu_seconds(runtime.proc.pid), time.monotonic()
        rss = procstat.rss_mb(runtime.proc.pid)
        sock.close()
        if recorder is not None:
            recorder.send_signal(2)
            recorder.wait(60)
            from benchmarks.profile import print_top

            print_top(label, out, 25)
        return {"cpu_us": (cpu1 - cpu0) * 1e6 / n, "calls_per_s": n / (t1 - t0), "rss_mb": rss,
                "p50_ms": latencies[len(latencies) // 2] * 1e3, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        runtime.stop()


def _med(values: list[float], fmt: str) -> str:
    text = fmt.format(statistics.median(values))
    return text if len(values) == 1 else f"{text} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="measured calls per run")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--windows", default="1,8", help="calls kept in flight (also ASYA_CONCURRENCY)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="a checkout measured as 'before wW' rows")
    parser.add_argument("--rate", type=float, default=None,
                        help="calls per second (paced arrivals, as in a pipeline); default: back to back")
    parser.add_argument("--profile", default=None, help="folder for py-spy raw stacks of every measured run")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    systems = [(f"{side} w{w}", tree, w) for w in windows
               for side, tree in ([("before", args.baseline)] if args.baseline else []) + [("now", None)]]
    profile = Path(args.profile) if args.profile else None
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {name: [] for name, _, _ in systems}
    pace = f"{args.rate:g} calls/s" if args.rate else "back to back"
    print(f"runtime CPU per call: n={args.n}, {pace}, {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}",
          flush=True)
    for round_no in range(args.rounds):
        shift = round_no % len(systems)
        for name, tree, window in systems[shift:] + systems[:shift]:
            row = measure(tree, window, args.n, args.warmup, profile, f"{name} r{round_no + 1}", args.rate)
            rows[name].append(row)
            print(f"  round {round_no + 1} {name:<10} {row['cpu_us']:7.1f} us/call  {row['calls_per_s']:7.0f} calls/s  "
                  f"round trip p50 {row['p50_ms']:.3f} ms p99 {row['p99_ms']:.3f} ms", flush=True)
    print("\n| runtime | CPU us per call | calls/s (noisy) | round trip p50 / p99 ms (noisy) | RSS MB |\n"
          "|---|---|---|---|---|")
    for name, _, _ in systems:
        got = rows[name]
        print(f"| {name} | {_med([r['cpu_us'] for r in got], '{:.1f}')} | {_med([r['calls_per_s'] for r in got], '{:.0f}')} "
              f"| {_med([r['p50_ms'] for r in got], '{:.3f}')} / {_med([r['p99_ms'] for r in got], '{:.3f}')} "
              f"| {_med([r['rss_mb'] for r in got], '{:.1f}')} |")


if __name__ == "__main__":
    main()
