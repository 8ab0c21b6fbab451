"""Gateway benchmarks: FLY latency to an SSE client, submit throughput, submit-to-final, 1,000 SSE clients.

Runs a real dev mesh (``asya dev``: sidecars, runtimes, crew and its gateway) per status store backend
(the SQLite file of the state dir, and PostgreSQL when its server tools are installed) and prints:

* FLY latency: the handler stamps ``time.time()`` in each chunk it yields; the client subtracts it from
  the chunk's arrival on the SSE stream (sidecar -> store -> feed -> SSE), p50/p99;
* submit throughput: 202 answers/s of ``POST /envelopes`` with 32 requests in flight;
* submit-to-final: POST to the SSE ``end`` event, against publishing directly (what ``asya send`` does)
  and polling the store, p50;
* 1,000 SSE clients on one replica, all following one streaming envelope: the gateway's RSS and the p99
  chunk latency over every client.

Usage: ``python -m benchmarks.gateway [--backends sqlite,postgres] [--clients 1000]``; also a row of
``make bench``. Figures depend on the machine: run it on an otherwise idle one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from asya_common import envelope as env
from asya_common.status import is_settled, open_store
from asya_common.transport import create_transport
from benchmarks.stats import latency_percentiles

HANDLERS = Path(__file__).resolve().parent.parent / "tests" / "gateway" / "handlers" / "gw_handlers.py"
ACTORS = [{"name": "stamps", "handler": "gw_handlers.stamp_chunks", "concurrency": 8},
          {"name": "noop", "handler": "gw_handlers.publish", "concurrency": 8}]


async def sse(host: str, port: int, path: str, on_event) -> None:
    """Follows one SSE stream over a bare HTTP/1.0 connection (no chunked encoding) until it closes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    event, data = "", ""
    try:
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: "):
                data = text[6:]
            elif not text and data:
                on_event(event, data)
                event, data = "", ""
    finally:
        writer.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fly_latency(url: str, host: str, port: int, envelopes: int = 5, chunks: int = 100) -> dict[str, float]:
    latencies: list[float] = []

    async def one() -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{url}/envelopes", json={"route": ["stamps"],
                                                                 "payload": {"n": chunks, "interval": 0.01}})
        def on_event(event: str, data: str) -> None:
            if event == "fly":
                latencies.append(time.time() - json.loads(data)["data"]["t"])

        await sse(host, port, f"/envelopes/{answer.json()['id']}/stream", on_event)

    await asyncio.gather(*(one() for _ in range(envelopes)))
    return {**latency_percentiles(latencies), "chunks": len(latencies)}


async def submit_throughput(url: str, n: int = 500, in_flight: int = 32) -> float:
    sem = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one(i: int) -> int:
            async with sem:
                return (await client.post(f"{url}/envelopes", json={"route": ["noop"], "payload": {"i": i}})).status_code

        started = time.perf_counter()
        codes = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
    assert codes.count(202) == n, f"{n - codes.count(202)} submissions were not accepted"
    return n / elapsed


async def submit_to_final(url: str, host: str, port: int, mesh: Any, n: int = 30) -> tuple[float, float]:
    through_gateway, direct = [], []
    async with httpx.AsyncClient() as client:
        for i in range(n):
            started = time.perf_counter()
            answer = await client.post(f"{url}/envelopes", json={"route": ["noop"], "payload": {"i": i}})
            await sse(host, port, f"/envelopes/{answer.json()['id']}/stream", lambda e, d: None)
            through_gateway.append(time.perf_counter() - started)
    store = open_store(mesh.status_location)
    try:
        async with create_transport(mesh.transport_settings) as transport:
            for i in range(n):
                envelope = env.make_envelope(["noop"], {"i": i})
                started = time.perf_counter()
                await asyncio.to_thread(store.mark_pending, envelope["id"], "noop")
                await transport.send(env.queue_name("noop", mesh.transport_settings.queue_prefix), env.dumps(envelope))
                while True:
                    record = await asyncio.to_thread(store.tree, envelope["id"])
                    if record and is_settled(record):
                        break
                    await asyncio.sleep(0.005)
                direct.append(time.perf_counter() - started)
    finally:
        store.close()
    return latency_percentiles(through_gateway)["p50_ms"], latency_percentiles(direct)["p50_ms"]


async def many_clients(url: str, host: str, port: int, gateway_pid: int, clients: int) -> dict[str, float]:
    """``clients`` streams on one envelope; chunks start only once every client is connected."""
    go = Path(tempfile.mkdtemp(prefix="asya-bench-go-")) / "go"
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/envelopes", json={"route": ["stamps"], "payload": {
            "n": 40, "interval": 0.25, "go": str(go)}})
    envelope_id = answer.json()["id"]
    latencies: list[float] = []
    connected = [0]
    peak = [0.0]

    def on_event(event: str, data: str) -> None:
        if event == "created":
            connected[0] += 1
        elif event == "fly":
            latencies.append(time.time() - json.loads(data)["data"]["t"])

    async def watch_rss() -> None:
        while True:
            peak[0] = max(peak[0], rss_mb(gateway_pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch_rss())
    streams = [asyncio.create_task(sse(host, port, f"/envelopes/{envelope_id}/stream", on_event))
               for _ in range(clients)]
    while connected[0] < clients:
        await asyncio.sleep(0.1)
    go.touch()
    await asyncio.gather(*streams)
    watcher.cancel()
    return {"rss_mb": peak[0], "clients": clients, **latency_percentiles(latencies), "chunks": len(latencies)}


def run_backend(name: str, status_db: str | None, clients: int) -> dict[str, Any]:
    """Runs every gateway measurement on one status store backend."""
    from tests.support.mesh import Mesh
    from tests.support.require import wait_for

    tmp = Path(tempfile.mkdtemp(prefix=f"asya-bench-gw-{name}-"))
    mesh = Mesh(tmp, ACTORS, env={"ASYA_STATUS_DB": status_db} if status_db else None)
    (mesh.values_dir / HANDLERS.name).write_text(HANDLERS.read_text())
    mesh.start(timeout=120)
    mesh.status_location = status_db or str(mesh.state / "status.sqlite3")
    try:
        wait_for(lambda: (mesh.state / "gateway.url").exists(), 60, 0.1, "the gateway URL")
        url = (mesh.state / "gateway.url").read_text()
        host, port = url.removeprefix("http://").split(":")
        pid = mesh.pids()["gateway"]["gateway"]

        async def measure() -> dict[str, Any]:
            fly = await fly_latency(url, host, int(port))
            rate = await submit_throughput(url)
            gateway_p50, direct_p50 = await submit_to_final(url, host, int(port), mesh)
            crowd = await many_clients(url, host, int(port), pid, clients)
            return {"fly": fly, "submit_per_s": rate, "final_gateway_p50": gateway_p50,
                    "final_direct_p50": direct_p50, "crowd": crowd}

        return asyncio.run(measure())
    finally:
        mesh.stop()


def print_rows(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(f"{'store':<9} | {'FLY p50/p99 ms':>15} | {'submit 202/s':>12} | {'final p50 ms gw/direct':>22} | "
          f"{'SSE clients':>11} {'RSS MB':>7} {'chunk p50/p99 ms':>17}")
    for name, r in rows:
        fly, crowd = r["fly"], r["crowd"]
        print(f"{name:<9} | {fly['p50_ms']:>7.1f}/{fly['p99_ms']:<7.1f} | {r['submit_per_s']:>12.0f} | "
              f"{r['final_gateway_p50']:>11.1f}/{r['final_direct_p50']:<10.1f} | {crowd['clients']:>11} "
              f"{crowd['rss_mb']:>7.0f} {crowd['p50_ms']:>8.1f}/{crowd['p99_ms']:<8.1f}", flush=True)


def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=1000, help="concurrent SSE clients on one replica")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,000 clients + the gateway's 1,000 sockets
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # inherited by `asya dev`
    rows = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            rows.append(("sqlite", run_backend("sqlite", None, args.clients)))
        elif backend == "postgres":
            from tests.support.postgres import PostgresServer, pg_tool

            if pg_tool("initdb") is None:
                print("postgres: skipped, PostgreSQL server tools are not installed")
                continue
            server = PostgresServer()
            try:
                server.start()
                rows.append(("postgres", run_backend("postgres", server.url, args.clients)))
            finally:
                server.stop()
    print_rows(rows)
    return rows


if __name__ == "__main__":
    main()
