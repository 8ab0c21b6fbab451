"""Generator handlers (SET / FLY ops, fan-out by yield) and envelope mode, through a real runtime."""

from __future__ import annotations

import asyncio

import pytest

from .client import envelope


async def test_set_route_next_applies_to_outputs_after_it(start_runtime):
    _, client = await start_runtime("rt_generators.route_then_payload")
    _, frame = await client.call(envelope({"doc": 1}, nxt=["default-next"]))
    [out] = frame["outputs"]
    assert out["route"] == {"prev": ["earlier"], "curr": "test-actor", "next": ["store", "notify"]}
    assert out["payload"] == {"stored": {"doc": 1}}


async def test_set_header_applies_only_to_later_outputs(start_runtime):
    _, client = await start_runtime("rt_generators.header_between")
    _, frame = await client.call(envelope({}))
    first, second = frame["outputs"]
    assert first["payload"] == {"first": True} and first["headers"] == {"trace": "t-1"}
    assert second["payload"] == {"second": True} and second["headers"] == {"trace": "t-1", "k": "v"}


async def test_yields_fan_out(start_runtime):
    _, client = await start_runtime("rt_generators.many")
    _, frame = await client.call(envelope({"count": 4}))
    assert [o["payload"] for o in frame["outputs"]] == [{"i": i} for i in range(4)]
    _, frame = await client.call(envelope({"count": 0}))
    assert frame["outputs"] == []


@pytest.mark.parametrize("handler", ["rt_generators.stream_tokens", "rt_generators.astream_tokens"])
async def test_fly_frame_arrives_while_the_generator_is_still_running(start_runtime, tmp_path, handler):
    _, client = await start_runtime(handler)
    flag = tmp_path / "flag"
    queue = await client.request({"op": "call", "envelope": envelope({"flag": str(flag)})})
    first = await asyncio.wait_for(queue.get(), 10)
    assert first["type"] == "fly"
    assert first["data"] in ({"token": "hello"}, {"token": "a"})
    flag.write_text("go")  # only now may the generator finish
    final = await asyncio.wait_for(queue.get(), 15)
    assert final["type"] == "result"
    assert final["outputs"][0]["payload"]["released"] is True


async def test_async_generator_set_then_payload(start_runtime, tmp_path):
    _, client = await start_runtime("rt_generators.astream_tokens")
    flag = tmp_path / "flag"
    flag.write_text("go")
    flies, frame = await client.call(envelope({"flag": str(flag)}))
    assert flies == [{"token": "a"}]
    assert frame["outputs"][0]["route"]["next"] == ["after"]


async def test_unknown_generator_op_is_a_processing_error_naming_it(start_runtime):
    _, client = await start_runtime("rt_generators.bad_op")
    _, frame = await client.call(envelope({}))
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "RouteError"
    assert "'JUMP'" in frame["error"]["message"]


async def test_non_serialisable_fly_data_is_a_processing_error(start_runtime):
    _, client = await start_runtime("rt_generators.bad_fly")
    flies, frame = await client.call(envelope({}))
    assert flies == []
    assert frame["type"] == "error" and frame["error"]["type"] == "ResultError"
    assert "object" in frame["error"]["message"]


async def test_envelope_mode_may_rewrite_route_next(start_runtime):
    _, client = await start_runtime("rt_envelope.reroute", ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(envelope({"x": 1}, nxt=["later"]))
    [out] = frame["outputs"]
    assert out["route"] == {"prev": ["earlier"], "curr": "test-actor", "next": ["audit", "later"]}
    assert out["payload"] == {"rerouted": True}
    assert out["headers"] == {"trace": "t-1"}


@pytest.mark.parametrize("handler,key", [("rt_envelope.change_curr", "curr"), ("rt_envelope.change_prev", "prev")])
async def test_envelope_mode_changing_prev_or_curr_is_a_route_error(start_runtime, handler, key):
    _, client = await start_runtime(handler, ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(envelope({}))
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "RouteError"
    assert f"route.{key}" in frame["error"]["message"]


async def test_envelope_mode_list_fan_out_and_generator(start_runtime):
    _, client = await start_runtime("rt_envelope.split", ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(envelope({}))
    assert [o["payload"] for o in frame["outputs"]] == [{"part": 0}, {"part": 1}]
    _, gen_client = await start_runtime("rt_envelope.gen", ASYA_HANDLER_MODE="envelope")
    flies, frame = await gen_client.call(envelope({}))
    assert flies == [{"progress": 1}]
    assert [o["payload"] for o in frame["outputs"]] == ["x"]


async def test_envelope_mode_rejects_a_returned_non_envelope(start_runtime):
    _, client = await start_runtime("rt_envelope.not_an_envelope", ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(envelope({}))
    assert frame["type"] == "error"
    assert frame["error"]["type"] == "EnvelopeError"
    assert "'id'" in frame["error"]["message"]
