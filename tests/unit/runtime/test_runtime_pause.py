"""("PAUSE", spec) through a real runtime: the call's one output carries the spec in x-asya-pause."""

from __future__ import annotations

from asya_common.envelope import H_PAUSE

from .client import envelope


async def test_pause_without_output_parks_the_input_payload(start_runtime):
    _, client = await start_runtime("rt_pause.review")
    flies, frame = await client.call(envelope({"doc": 1}))
    assert flies == [{"status": "asking"}]
    [out] = frame["outputs"]
    assert out["payload"] == {"doc": 1}
    assert out["headers"][H_PAUSE] == {"prompt": "Is this right?", "schema": {"type": "object"},
                                       "into": ".payload.review"}


async def test_pause_then_output_parks_that_output(start_runtime):
    _, client = await start_runtime("rt_pause.review_then_output")
    _, frame = await client.call(envelope({"doc": 2}))
    [out] = frame["outputs"]
    assert out["payload"] == {"prepared": {"doc": 2}} and out["headers"][H_PAUSE] == {"prompt": "ok?"}


async def test_malformed_pause_is_a_route_error_naming_the_shape(start_runtime):
    _, client = await start_runtime("rt_pause.bad_pause")
    _, frame = await client.call(envelope({}))
    assert frame["type"] == "error" and frame["error"]["type"] == "RouteError"
    assert "PAUSE takes one dict" in frame["error"]["message"]


async def test_envelope_mode_generator_pause_parks_the_input_envelope(start_runtime):
    _, client = await start_runtime("rt_pause.envelope_review", ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(envelope({"doc": 3}))
    [out] = frame["outputs"]
    assert out["payload"] == {"doc": 3} and out["headers"][H_PAUSE] == {"prompt": "env?"}


async def test_an_inherited_pause_header_never_parks_an_output(start_runtime):
    """A client or an earlier hop cannot make a handler that did not pause park its output."""
    smuggled = envelope({"doc": 4})
    smuggled["headers"][H_PAUSE] = {"prompt": "gotcha"}
    _, client = await start_runtime("rt_pause.passthrough")
    _, frame = await client.call(smuggled)
    assert H_PAUSE not in frame["outputs"][0]["headers"]
    _, client = await start_runtime("rt_pause.envelope_passthrough", ASYA_HANDLER_MODE="envelope")
    _, frame = await client.call(smuggled)
    assert H_PAUSE not in frame["outputs"][0]["headers"]
