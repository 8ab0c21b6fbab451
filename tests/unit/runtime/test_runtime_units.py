"""Direct tests of the runtime's pure pieces: output collection, error description, loader, settings, logs."""

from __future__ import annotations

import json
import logging

import pytest
from asya_common.envelope import EnvelopeError, RouteError
from asya_common.settings import SettingsError

from asya_runtime.config import load_runtime_settings
from asya_runtime.invoke import OutputCollector, error_info
from asya_runtime.jsonlog import JsonFormatter, current_envelope_id
from asya_runtime.loader import HandlerConfigError, HandlerInitError, load_handler

from .client import HANDLERS_DIR, envelope


@pytest.fixture
def handlers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HANDLERS_DIR))


def test_collector_does_not_touch_the_input_and_outputs_do_not_share_state():
    source = envelope({"big": [1, 2]}, nxt=["a"])
    collector = OutputCollector(source, "payload")
    collector.on_yield(("SET", ".route.next", ["b"]))
    item = {"x": [1]}
    collector.on_yield(item)
    item["x"].append(2)  # the generator mutates what it yielded: the output must not change
    collector.on_yield(item)
    first, second = collector.outputs
    assert first["payload"] == {"x": [1]} and second["payload"] == {"x": [1, 2]}
    first["headers"]["new"] = 1
    assert second["headers"] == {"trace": "t-1"}
    assert source["route"]["next"] == ["a"] and source["headers"] == {"trace": "t-1"}


def test_collector_yielded_none_is_skipped_and_returned_list_fans_out():
    collector = OutputCollector(envelope(1), "payload")
    assert collector.on_yield(None) is None
    collector.on_return([[1], [2]])
    assert [o["payload"] for o in collector.outputs] == [[1], [2]]


@pytest.mark.parametrize(
    "item,message",
    [
        (("SET", ".route.next"), "SET takes a path and a value"),
        (("SET", ".route.next", "not-a-list"), "needs a list of actor names"),
        (("SET", ".route.next", ["happy-end"]), "terminal actors"),
        (("SET", ".payload", 1), "unsupported SET path"),
        (("FLY",), "FLY takes one value"),
        (("EMIT", 1), "unknown generator op 'EMIT'"),
    ],
)
def test_collector_rejects_malformed_ops(item, message):
    with pytest.raises(RouteError, match=message):
        OutputCollector(envelope(1), "payload").on_yield(item)


def test_collector_fly_is_returned_for_immediate_sending():
    collector = OutputCollector(envelope(1), "payload")
    assert collector.on_yield(("FLY", {"t": 1})) == ("FLY", {"t": 1})
    assert collector.outputs == []


def test_collector_envelope_mode_validates_and_forbids_set():
    collector = OutputCollector(envelope(1), "envelope")
    with pytest.raises(RouteError, match="envelope mode"):
        collector.on_yield(("SET", ".route.next", ["x"]))
    with pytest.raises(EnvelopeError):
        collector.on_return("not an envelope")
    argument = collector.argument()
    argument["route"]["next"] = ["z"]
    collector.on_return(argument)
    assert collector.outputs[0]["route"]["next"] == ["z"]
    assert collector.input["route"]["next"] == ["later"]


class LocalError(Exception):
    pass


def test_error_info_names_builtin_and_user_types():
    try:
        raise ValueError("bad")
    except ValueError as exc:
        info = error_info(exc)
    assert info["type"] == "ValueError" and info["message"] == "bad"
    assert info["traceback"].startswith("Traceback (most recent call last)")
    assert error_info(LocalError("x"))["type"].endswith("test_runtime_units.LocalError")
    assert error_info(RouteError("r"))["type"] == "RouteError"


def test_loader_resolves_functions_classes_and_async(handlers_on_path):
    echo = load_handler("rt_payload.echo")
    assert echo.function(1) == {"echo": 1} and not echo.is_async
    model = load_handler("rt_classes.Model.predict", {"name": "m"})
    assert model.function({"x": 1})["name"] == "m"
    assert load_handler("rt_async.sleepy").is_async
    assert load_handler("rt_generators.astream_tokens").is_async
    assert not load_handler("rt_generators.many").is_async
    assert load_handler("json.decoder.JSONDecoder.decode").function('{"a": 1}') == {"a": 1}  # dotted module


def test_loader_errors_are_classified(handlers_on_path):
    with pytest.raises(HandlerConfigError, match="cannot import handler module 'rt_nope'"):
        load_handler("rt_nope.f")
    with pytest.raises(HandlerConfigError, match="'json.nope' is not a class|has no attribute 'nope'"):
        load_handler("json.nope.f")
    with pytest.raises(HandlerConfigError, match="unexpected keyword argument 'zzz'"):
        load_handler("rt_classes.Model.predict", {"zzz": 1})
    with pytest.raises(HandlerInitError, match="weights file missing"):
        load_handler("rt_classes.BrokenInit.run")


def test_settings_defaults_and_parsing():
    settings = load_runtime_settings({"ASYA_HANDLER": "m.f"})
    assert settings.handler_mode == "payload"
    assert settings.handler_args == {}
    assert settings.socket_path == "/var/run/asya/asya-runtime.sock"
    assert settings.concurrency == 1 and settings.actor_name == "" and settings.log_level == "INFO"
    custom = load_runtime_settings({"ASYA_HANDLER": "m.C.f", "ASYA_HANDLER_ARGS": '{"a": [1]}', "ASYA_CONCURRENCY": "8",
                                    "ASYA_HANDLER_MODE": "envelope", "ASYA_LOG_LEVEL": "debug"})
    assert custom.handler_args == {"a": [1]} and custom.concurrency == 8 and custom.handler_mode == "envelope"
    with pytest.raises(SettingsError, match="ASYA_HANDLER is required"):
        load_runtime_settings({})


def test_json_formatter_emits_one_object_with_context():
    formatter = JsonFormatter(actor="a1", handler="m.f")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("wörld",), None)
    record.extra_field = {"k": 1}
    token = current_envelope_id.set("e-9")
    try:
        line = formatter.format(record)
    finally:
        current_envelope_id.reset(token)
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == "hello wörld" and data["level"] == "warning"
    assert data["actor"] == "a1" and data["handler"] == "m.f" and data["envelope_id"] == "e-9"
    assert data["extra_field"] == {"k": 1} and "ts" in data
