"""Payload-mode behaviour through a real socket against a real runtime process."""

from __future__ import annotations

import asyncio

from .client import envelope


async def test_ping_names_handler_and_pid(start_runtime):
    process, client = await start_runtime("rt_payload.echo")
    pong = await client.ping()
    assert pong["type"] == "pong"
    assert pong["handler"] == "rt_payload.echo"
    assert pong["pid"] == process.proc.pid


async def test_dict_result_replaces_payload_and_keeps_the_rest(start_runtime):
    _, client = await start_runtime("rt_payload.echo")
    source = envelope({"a": 1}, custom_key={"kept": True})
    flies, frame = await client.call(source)
    assert flies == []
    assert frame["type"] == "result"
    [out] = frame["outputs"]
    assert out["payload"] == {"echo": {"a": 1}}
    assert out["id"] == "env-1"
    assert out["route"] == source["route"]  # the sidecar advances the route, not the runtime
    assert out["headers"] == {"trace": "t-1"}
    assert out["custom_key"] == {"kept": True}


async def test_list_result_fans_out_one_output_per_item(start_runtime):
    _, client = await start_runtime("rt_payload.fan_out")
    _, frame = await client.call(envelope({"count": 3}))
    assert [o["payload"] for o in frame["outputs"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(o["route"]["curr"] == "test-actor" and o["headers"] == {"trace": "t-1"} for o in frame["outputs"])


async def test_none_result_means_no_outputs(start_runtime):
    _, client = await start_runtime("rt_payload.nothing")
    _, frame = await client.call(envelope({"x": 1}))
    assert frame == {"id": frame["id"], "type": "result", "outputs": []}


async def test_scalar_results_are_one_output(start_runtime):
    _, client = await start_runtime("rt_payload.identity")
    for value in ("text", 0, 2.5, True, {"nested": [1, {"x": None}]}):
        _, frame = await client.call(envelope(value))
        assert [o["payload"] for o in frame["outputs"]] == [value]


async def test_exception_becomes_error_frame_and_runtime_keeps_serving(start_runtime):
    _, client = await start_runtime("rt_payload.fail")
    _, frame = await client.call(envelope({"builtin": True, "n": 7}))
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "ValueError"
    assert frame["error"]["message"] == "bad value 7"
    assert "Traceback (most recent call last)" in frame["error"]["traceback"]
    assert "rt_payload.py" in frame["error"]["traceback"] and "raise ValueError" in frame["error"]["traceback"]

    _, frame = await client.call(envelope({}))
    assert frame["error"]["type"] == "rt_payload.MyError"
    assert frame["error"]["message"] == "custom failure"
    assert (await client.ping())["type"] == "pong"


async def test_non_serialisable_result_is_an_error_naming_the_type(start_runtime):
    _, client = await start_runtime("rt_payload.not_serialisable")
    _, frame = await client.call(envelope({}))
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "ResultError"
    assert "datetime" in frame["error"]["message"]
    assert (await client.ping())["type"] == "pong"


async def test_invalid_input_envelope_is_an_error_naming_the_problem(start_runtime):
    _, client = await start_runtime("rt_payload.echo")
    _, frame = await client.call({"route": {"curr": "x"}, "payload": 1})
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "EnvelopeError"
    assert "'id'" in frame["error"]["message"]


async def test_unknown_op_is_answered_with_an_error(start_runtime):
    _, client = await start_runtime("rt_payload.echo")
    queue = await client.request({"op": "dance"})
    frame = await asyncio.wait_for(queue.get(), 10)
    assert frame["type"] == "error" and frame["error"]["type"] == "ProtocolError"
    assert "dance" in frame["error"]["message"]


async def test_large_unicode_deeply_nested_payload_round_trips_exactly(start_runtime):
    _, client = await start_runtime("rt_payload.identity")
    big_text = "żółć 🚀 日本語 \u0000 \"quoted\" \\ " * 400_000
    deep: object = {"leaf": "🍃"}
    for level in range(200):
        deep = {"level": level, "child": deep, "list": [level, None, True]}
    payload = {"big": big_text, "deep": deep, "floats": [1e308, -0.0, 1.5e-300], "ints": [2**63, -(2**63)]}
    _, frame = await client.call(envelope(payload), timeout=120)
    assert frame["type"] == "result"
    assert frame["outputs"][0]["payload"] == payload
    assert len(big_text.encode("utf-8")) > 10 * 1024 * 1024


async def test_several_calls_in_flight_on_one_connection_are_answered_by_id(start_runtime):
    _, client = await start_runtime("rt_payload.echo", ASYA_CONCURRENCY="4")
    results = await asyncio.gather(*(client.call(envelope({"n": i})) for i in range(20)))
    assert [frame["outputs"][0]["payload"] for _, frame in results] == [{"echo": {"n": i}} for i in range(20)]


async def test_garbage_frame_closes_only_that_connection(start_runtime):
    process, client = await start_runtime("rt_payload.echo")
    reader, writer = await asyncio.open_unix_connection(str(process.socket_path))
    writer.write(b"\x00\x00\x00\x05nope!")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the runtime hung up on the bad peer
    writer.close()
    _, frame = await client.call(envelope({"still": "serving"}))
    assert frame["outputs"][0]["payload"] == {"echo": {"still": "serving"}}
    assert "frame is not JSON" in process.stderr
