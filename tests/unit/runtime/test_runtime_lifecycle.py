"""Concurrency, the shutdown op, SIGTERM, the socket file and JSON logs of a real runtime process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat

import pytest

from .client import RuntimeProcess, RuntimeTestClient, envelope


async def test_async_handler_runs_eight_calls_at_once_and_no_more(start_runtime):
    _, client = await start_runtime("rt_async.sleepy", ASYA_CONCURRENCY="8")
    results = await asyncio.gather(*(client.call(envelope({"seconds": 0.5})) for _ in range(10)))
    seen = [frame["outputs"][0]["payload"]["max_seen"] for _, frame in results]
    assert max(seen) == 8


async def test_async_handler_exception_is_reported(start_runtime):
    _, client = await start_runtime("rt_async.afail")
    _, frame = await client.call(envelope({}))
    assert frame["error"]["type"] == "KeyError" and "missing" in frame["error"]["message"]


async def test_stuck_sync_handler_does_not_block_ping_and_shutdown_exits_75(start_runtime):
    process, client = await start_runtime("rt_payload.stuck")
    stuck = asyncio.ensure_future(client.call(envelope({}), timeout=60))
    pong = await client.ping()  # the loop still serves while the only worker thread is stuck
    assert pong["type"] == "pong"
    queue = await client.request({"op": "shutdown"})
    reply = await asyncio.wait_for(queue.get(), 10)
    assert reply["type"] == "shutdown" and reply["pid"] == process.proc.pid
    assert await process.wait_exit(timeout=10) == 75
    assert not stuck.done() or isinstance(stuck.exception(), ConnectionError)
    stuck.cancel()


async def test_sync_handler_runs_on_concurrency_worker_threads(start_runtime):
    _, client = await start_runtime("rt_payload.threaded", ASYA_CONCURRENCY="3")
    results = await asyncio.gather(*(client.call(envelope({"seconds": 0.5})) for _ in range(5)))
    payloads = [frame["outputs"][0]["payload"] for _, frame in results]
    assert max(p["max_seen"] for p in payloads) == 3
    assert all(p["thread"].startswith("asya-handler") for p in payloads)


async def test_sigterm_finishes_in_flight_calls_refuses_new_ones_and_exits_0(start_runtime):
    process, client = await start_runtime("rt_payload.slow", ASYA_CONCURRENCY="2")
    in_flight = asyncio.ensure_future(client.call(envelope({"seconds": 1.5})))
    await client.ping()  # frames are handled in order: the call is dispatched by now
    process.signal(signal.SIGTERM)
    for _ in range(100):  # wait until the listener is closed (stopping has begun)
        try:
            probe = await RuntimeTestClient.connect(process.socket_path)
        except OSError:
            break
        await probe.close()
        await asyncio.sleep(0.05)
    _, refused = await client.call(envelope({"seconds": 0}))
    assert refused["type"] == "error" and refused["error"]["type"] == "ShuttingDown"
    _, frame = await in_flight
    assert frame["type"] == "result" and frame["outputs"][0]["payload"]["slept"] == 1.5
    assert await process.wait_exit(timeout=30) == 0
    assert not process.socket_path.exists()


async def test_stale_socket_is_replaced_and_socket_is_owner_only(tmp_path):
    socket_path = tmp_path / "run" / "asya-runtime.sock"
    socket_path.parent.mkdir()
    socket_path.write_text("stale leftover")
    process = RuntimeProcess(tmp_path, "rt_payload.echo")
    try:
        await process.wait_ready()
        mode = os.stat(process.socket_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600  # owner-only (issue 10)
    finally:
        process.stop()


async def test_logs_are_json_lines_with_actor_handler_and_envelope_id(start_runtime):
    process, client = await start_runtime("rt_payload.logs", ASYA_LOG_LEVEL="DEBUG")
    source = envelope({"what": "doc-7"})
    source["id"] = "env-log-1"
    await client.call(source)
    process.signal(signal.SIGTERM)
    assert await process.wait_exit() == 0
    lines = [json.loads(line) for line in process.stderr.splitlines() if line.strip()]
    assert all({"ts", "level", "msg", "actor", "handler"} <= set(line) for line in lines)
    user_line = next(line for line in lines if line["msg"] == "working on doc-7")
    assert user_line["envelope_id"] == "env-log-1"
    assert user_line["actor"] == "test-actor" and user_line["handler"] == "rt_payload.logs"
    assert user_line["level"] == "info"
    assert any(line["msg"] == "runtime ready" for line in lines)


async def test_sigterm_with_a_stuck_call_exits_0_after_the_grace_period(tmp_path):
    # Same entry point, with the 25 s grace period shortened so the abandon path runs quickly.
    code = (
        "import sys, asya_runtime.server as server; server.SHUTDOWN_GRACE_SECONDS = 0.5; "
        "from asya_runtime.__main__ import main; sys.exit(main())"
    )
    process = RuntimeProcess(tmp_path, "rt_payload.stuck", python_args=("-c", code))
    try:
        await process.wait_ready()
        client = await RuntimeTestClient.connect(process.socket_path)
        stuck = asyncio.ensure_future(client.call(envelope({}), timeout=60))
        await client.ping()
        process.signal(signal.SIGTERM)
        assert await process.wait_exit(timeout=20) == 0
        stuck.cancel()
        await client.close()
    finally:
        process.stop()
    warning = [json.loads(line) for line in process.stderr.splitlines() if "abandoning" in line]
    assert warning and warning[0]["abandoned"] == 1 and warning[0]["level"] == "warning"


@pytest.mark.parametrize("handler", ["rt_payload.prints", "rt_async.aprints"])
async def test_print_and_log_lines_carry_the_calls_envelope_and_trace_ids(start_runtime, handler):
    process, client = await start_runtime(handler, ASYA_CONCURRENCY="4")
    trace_ids = {n: (f"{n:032x}", f"{n + 100:016x}") for n in range(1, 9)}
    calls = []
    for n, (trace_id, span_id) in trace_ids.items():
        source = envelope({"what": f"doc-{n}"})
        source["id"] = f"env-{n}"
        source["headers"]["traceparent"] = f"00-{trace_id}-{span_id}-01"
        calls.append(client.call(source))
    await asyncio.gather(*calls)  # several at once, on several handler threads
    process.signal(signal.SIGTERM)
    assert await process.wait_exit() == 0
    lines = [json.loads(line) for line in process.stderr.splitlines() if line.strip()]
    for n, (trace_id, span_id) in trace_ids.items():
        for text in (f"printed doc-{n}", f"logged doc-{n}"):
            [line] = [line for line in lines if line["msg"] == text]
            assert line["envelope_id"] == f"env-{n}"
            assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    ready = next(line for line in lines if line["msg"] == "runtime ready")
    assert "envelope_id" not in ready and "trace_id" not in ready


async def test_sigterm_with_an_async_handler_finishes_running_calls_and_refuses_waiting_ones(start_runtime):
    process, client = await start_runtime("rt_async.sleepy", ASYA_CONCURRENCY="2")
    calls = [asyncio.ensure_future(client.call(envelope({"seconds": 1.0}))) for _ in range(4)]
    await client.ping()  # the four calls are written before the pong is read: they arrive before SIGTERM
    process.signal(signal.SIGTERM)
    answers = [frame for _, frame in await asyncio.gather(*calls)]  # two ran, two waited for a slot
    assert sorted(frame["type"] for frame in answers) == ["error", "error", "result", "result"]
    assert all(frame["error"]["type"] == "ShuttingDown" for frame in answers if frame["type"] == "error")
    assert await process.wait_exit(timeout=30) == 0
