"""Issue 10, items 2, 3 and 5 in a real runtime process: exits, BaseExceptions, strict results, the socket.

Before the fix: a BaseException subclass left the call unanswered (the sidecar waited for actorTimeout),
``sys.exit(2)`` ended the runtime with exit code 2 (which ``asya dev`` reads as "bad configuration" and
stops the whole mesh), NaN was sent as non-standard JSON, the socket was 0666, and a peer could stall
inside a frame forever or announce a 512 MB frame.
"""

from __future__ import annotations

import asyncio
import os
import stat
import struct
from pathlib import Path

import pytest

from tests.unit.runtime.client import COMMON_SRC, RUNTIME_SRC, RuntimeProcess, RuntimeTestClient, envelope

HANDLERS = Path(__file__).resolve().parent / "handlers"
PYTHONPATH = os.pathsep.join([str(HANDLERS), str(RUNTIME_SRC), str(COMMON_SRC)])


@pytest.fixture
async def runtime(tmp_path):
    started: list[tuple[RuntimeProcess, RuntimeTestClient]] = []
    counter = iter(range(100))

    async def start(handler: str, **env: str):
        folder = tmp_path / f"rt{next(counter)}"
        folder.mkdir()
        process = RuntimeProcess(folder, handler, PYTHONPATH=PYTHONPATH, **env)
        await process.wait_ready()
        client = await RuntimeTestClient.connect(process.socket_path)
        started.append((process, client))
        return process, client

    yield start
    for process, client in started:
        await client.close()
        process.stop()


@pytest.mark.parametrize("handler, kind", [
    ("hd_handlers.raise_base", "hd_handlers.Custom"),
    ("hd_handlers.raise_keyboard", "KeyboardInterrupt"),
    ("hd_handlers.araise_base", "hd_handlers.Custom"),
    # A handler's own ConnectionError is its failure, not a lost sidecar socket (before: no answer until actorTimeout).
    ("hd_handlers.raise_refused", "ConnectionRefusedError"),
    ("hd_handlers.stream_then_broken_pipe", "BrokenPipeError"),
])
async def test_a_base_exception_is_reported_at_once(runtime, handler, kind):
    process, client = await runtime(handler)
    _, frame = await client.call(envelope({}), timeout=10)
    assert frame["type"] == "error" and frame["error"]["type"] == kind
    assert (await client.ping())["type"] == "pong" and process.proc.poll() is None


@pytest.mark.parametrize("handler, code", [("hd_handlers.exit_two", 2), ("hd_handlers.aexit_three", 3)])
async def test_sys_exit_is_a_crash_of_that_call_and_a_restart_never_a_config_exit(runtime, handler, code):
    process, client = await runtime(handler)
    _, frame = await client.call(envelope({}), timeout=10)
    assert frame["error"]["type"] == "SystemExit"
    assert f"sys.exit({code})" in frame["error"]["message"]
    assert await process.wait_exit(timeout=10) == 70  # restart me; 2/3 would stop `asya dev`


@pytest.mark.parametrize("handler, words", [
    ("hd_handlers.nan_result", "nan"), ("hd_handlers.inf_result", "inf"),
    ("hd_handlers.surrogate_result", "surrogate"), ("hd_handlers.deep_result", "nested too deeply"),
])
async def test_results_that_are_not_strict_json_are_a_clear_error(runtime, handler, words):
    _, client = await runtime(handler)
    _, frame = await client.call(envelope({}), timeout=10)
    assert frame["type"] == "error" and frame["error"]["type"] == "ResultError"
    assert words in frame["error"]["message"] and "JSON" in frame["error"]["message"]


async def test_the_socket_is_owner_only_in_an_owner_only_directory(runtime):
    process, _ = await runtime("hd_handlers.echo")
    assert stat.S_IMODE(os.stat(process.socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(process.socket_path.parent).st_mode) == 0o700


async def test_an_existing_wider_socket_directory_is_tightened(tmp_path):
    folder = tmp_path / "wide"
    (folder / "run").mkdir(parents=True)
    os.chmod(folder / "run", 0o777)
    process = RuntimeProcess(folder, "hd_handlers.echo", PYTHONPATH=PYTHONPATH)
    try:
        await process.wait_ready()
        assert stat.S_IMODE(os.stat(folder / "run").st_mode) == 0o700
    finally:
        process.stop()


async def test_a_peer_stalled_inside_a_frame_is_cut_off(runtime):
    _, client = await runtime("hd_handlers.echo", ASYA_FRAME_TIMEOUT="1")
    reader, writer = await asyncio.open_unix_connection(str(client.writer.get_extra_info("peername")))
    writer.write(struct.pack(">I", 100) + b'{"id"')  # header plus a partial body, then silence
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 20) == b""  # the runtime closed the connection


async def test_a_frame_bigger_than_the_largest_message_is_refused_before_buffering(runtime):
    _, client = await runtime("hd_handlers.echo", ASYA_MAX_MESSAGE_BYTES="65536")
    reader, writer = await asyncio.open_unix_connection(str(client.writer.get_extra_info("peername")))
    writer.write(struct.pack(">I", 400 * 1024 * 1024))  # announces 400 MB (under the old 512 MB cap)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert (await client.ping())["type"] == "pong"
