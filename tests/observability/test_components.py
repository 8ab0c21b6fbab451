"""Tracing settings, the controller's spans (into a real Jaeger) and the gateway's trace-context hand-over."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asya_common.otel import TracingSettings, parse_traceparent
from asya_common.settings import SettingsError, load_settings
from asya_controller.tracing import ControllerTracer
from asya_gateway.tracing import trace_headers
from tests.observability.jaeger import Jaeger, jaeger_binary, spans_of
from tests.support.require import require, wait_for


def test_tracing_is_off_unless_an_otlp_endpoint_is_set():
    assert not load_settings(TracingSettings, {}).enabled
    on = load_settings(TracingSettings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert on.enabled and on.url == "http://collector:4318/v1/traces"
    full = load_settings(TracingSettings, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"})
    assert full.enabled and full.url == "http://c:4318/custom"
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert not load_settings(TracingSettings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **off}).enabled


def test_bad_tracing_settings_name_the_variable():
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        load_settings(TracingSettings, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(SettingsError, match="OTEL_BSP_MAX_QUEUE_SIZE"):
        load_settings(TracingSettings, {"OTEL_BSP_MAX_QUEUE_SIZE": "many"})


@pytest.mark.parametrize("value, expected", [
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
    ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
    ("00-not-a-trace-01", None), (42, None), (None, None)])
def test_traceparent_parsing(value, expected):
    assert parse_traceparent(value) == expected


def test_the_gateway_hands_an_http_callers_trace_context_to_the_envelope():
    http = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=1"}
    assert trace_headers(http, None) == http
    assert trace_headers(http, {"x-team": "v"}) == {**http, "x-team": "v"}
    assert trace_headers(http, {"traceparent": "given"})["traceparent"] == "given"  # the body wins
    assert trace_headers({}, {"x": "1"}) == {"x": "1"} and trace_headers({}, None) is None
    assert trace_headers(http, ["not", "a", "dict"]) == ["not", "a", "dict"]  # the service rejects it


def test_controller_tracing_off_only_awaits_and_still_exposes_the_drop_counter():
    registry = CollectorRegistry()
    tracer = ControllerTracer(None, registry)

    async def work():
        return 7

    assert not tracer.enabled
    assert asyncio.run(tracer.traced("reconcile x", work())) == 7
    assert "asya_trace_spans_dropped_total" in generate_latest(registry).decode()


def test_controller_reconcile_spans_reach_jaeger(tmp_path):
    binary = jaeger_binary()
    require(binary is not None, "jaeger is not built: run `make tools-jaeger`")
    jaeger = Jaeger(binary, tmp_path / "jaeger").start()
    try:
        settings = load_settings(TracingSettings, {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
                                                   "OTEL_BSP_SCHEDULE_DELAY": "100"})
        tracer = ControllerTracer(settings, CollectorRegistry())

        async def ok():
            return "done"

        async def broken():
            raise RuntimeError("api server gone")

        async def run():
            assert await tracer.traced("reconcile ml/judge", ok(), deleted=False) == "done"
            with pytest.raises(RuntimeError):
                await tracer.traced("reconcile ml/store", broken(), deleted=True)
            await tracer.close()

        asyncio.run(run())
        traces = wait_for(lambda: len(jaeger.find("asya-controller")) >= 2 and jaeger.find("asya-controller"),
                          60, interval=0.5, what="controller spans in jaeger")
        spans = {s["name"]: s for t in traces for s in spans_of(t)}
        assert spans["reconcile ml/judge"]["tags"]["deleted"] is False
        assert spans["reconcile ml/store"]["tags"]["error.type"] == "RuntimeError"
    finally:
        jaeger.stop()


def test_a_full_export_queue_drops_spans_and_counts_them_without_blocking():
    import socket
    import time

    from asya_common.otel import create_provider, drop_counter, shutdown_provider

    # A backend that accepts connections and never answers: the export thread hangs in its first export.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)
    try:
        registry = CollectorRegistry()
        settings = load_settings(TracingSettings, {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stuck.getsockname()[1]}",
            "OTEL_EXPORTER_OTLP_TIMEOUT_SECONDS": "3", "OTEL_BSP_MAX_QUEUE_SIZE": "5",
            "OTEL_BSP_SCHEDULE_DELAY": "60000"})
        provider = create_provider(settings, "test", drop_counter(registry))
        tracer = provider.get_tracer("test")
        started = time.monotonic()
        for i in range(50):
            tracer.start_span(f"s{i}").end()
        assert time.monotonic() - started < 2  # never waits for the backend
        # 5 taken by the hanging export, 5 queued, the other 40 dropped and counted.
        assert registry.get_sample_value("asya_trace_spans_dropped_total", {"reason": "queue_full"}) >= 30
        asyncio.run(shutdown_provider(provider, timeout=1))
    finally:
        stuck.close()
