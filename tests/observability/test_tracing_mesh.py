"""One trace per request through a real mesh, read back from a real Jaeger.

``asya dev`` runs split -> flaky -> finish (+ happy-end) with tracing on (the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``), on the embedded SQLite queue and on RabbitMQ. ``split`` fans out
into two items and ``flaky`` fails item 0 once, so the trace must show: the caller's span as the
parent, one hop span per actor, one fan-out span per child under the split hop, the failed attempt
with its error type and a ``retry scheduled`` event, the retried attempt below it, and the handler's
log lines carrying the trace and span ids. ``asya trace ID`` lists the same hops from the status store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from asya_common.settings import to_env
from tests.observability.jaeger import Jaeger, jaeger_binary, spans_of
from tests.support.mesh import Mesh
from tests.support.require import require, wait_for

HANDLERS = Path(__file__).resolve().parent / "handlers" / "trace_handlers.py"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def policy(max_attempts: int = 3) -> dict:
    return {"actorTimeout": "30s", "policies": {"default": {"maxAttempts": max_attempts, "backoff": "constant",
                                                            "initialInterval": "200ms", "maxInterval": "200ms"}}}


ACTORS = [
    {"name": "split", "handler": "trace_handlers.split", "resiliency": policy()},
    {"name": "flaky", "handler": "trace_handlers.flaky", "resiliency": policy()},
    {"name": "finish", "handler": "trace_handlers.finish", "resiliency": policy()},
]
ROUTE = "split,flaky,finish"


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory):
    binary = jaeger_binary()
    require(binary is not None, "jaeger is not built: run `make tools-jaeger`")
    server = Jaeger(binary, tmp_path_factory.mktemp("jaeger")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "rabbitmq"])
def transport(request):
    if request.param == "sqlite":
        return None
    return replace(request.getfixturevalue("rabbitmq_settings"), queue_prefix=f"tr{uuid.uuid4().hex[:8]}-")


def start_mesh(tmp_path: Path, endpoint: str | None, transport, actors=ACTORS, extra_env=None) -> Mesh:
    """``asya dev`` with tracing on through the standard env (or, when ``endpoint`` is None, the values files)."""
    env = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_EXPORTER_OTLP_TIMEOUT_SECONDS": "2", **(extra_env or {})}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    mesh = Mesh(tmp_path, actors, env=env, transport=transport)
    shutil.copy(HANDLERS, mesh.values_dir / HANDLERS.name)
    return mesh.start(timeout=120)


def asya(mesh: Mesh, *args: str) -> str:
    environ = {**os.environ, **to_env(mesh.transport_settings)}  # broker credentials are never in dev.json
    proc = subprocess.run([sys.executable, "-m", "asya_cli.main", *args, "--state-dir", str(mesh.state)],
                          capture_output=True, text=True, timeout=120, cwd=mesh.tmp, env=environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def wait_trace(jaeger: Jaeger, trace_id: str, ready, timeout: float = 90) -> list[dict]:
    """Polls Jaeger until the trace's spans satisfy ``ready`` (each process exports on its own)."""
    def check():
        trace = jaeger.trace(trace_id)
        spans = spans_of(trace) if trace else []
        return spans if spans and ready(spans) else None
    try:
        return wait_for(check, timeout, interval=0.5, what=f"trace {trace_id} in jaeger")
    except TimeoutError:
        trace = jaeger.trace(trace_id)
        raise AssertionError(f"incomplete trace: {[(s['name'], s['tags'].get('asya.envelope_id')) for s in spans_of(trace)] if trace else None}")


def hops(spans: list[dict], actor: str) -> list[dict]:
    return [s for s in spans if s["name"] == f"process {actor}"]


def test_one_trace_with_fan_out_and_retry_continues_the_callers_traceparent(tmp_path, jaeger, transport):
    mesh = start_mesh(tmp_path, jaeger.otlp_endpoint, transport)
    try:
        root = f"req-{uuid.uuid4().hex[:10]}"
        asya(mesh, "send", "--route", ROUTE, "--payload", json.dumps({"n": 2, "run": root}), "--id", root,
             "--header", f"traceparent=00-{CALLER_TRACE}-{CALLER_SPAN}-01", "--header", "tracestate=vendor=1")
        record = mesh.wait_final(root, timeout=90)
        assert record["status"] == "succeeded", record

        def complete(spans):
            mine = [s for s in spans if str(s["tags"].get("asya.envelope_id", "")).startswith(root)]
            return len(hops(mine, "happy-end")) == 2 and len(hops(mine, "flaky")) == 3 and len(hops(mine, "finish")) == 2
        spans = wait_trace(jaeger, CALLER_TRACE, complete)
        spans = [s for s in spans if str(s["tags"].get("asya.envelope_id", "")).startswith(root)
                 or s["name"].startswith("fan-out ")]
        by_id = {s["id"]: s for s in spans}

        # The first hop continues the caller's span; every span is in the caller's trace.
        (split,) = hops(spans, "split")
        assert split["parent"] == CALLER_SPAN
        assert split["service"] == "split"
        assert split["tags"]["asya.actor"] == "split" and split["tags"]["asya.envelope_id"] == root
        assert split["tags"]["asya.outcome"] == "succeeded" and split["tags"]["asya.attempt"] == 1
        assert split["tags"]["messaging.destination.name"].endswith("split")
        assert split["tags"]["asya.payload_size"] > 0 and split["tags"]["asya.outputs"] == 2
        # One span per hop: the phases are events on it; the only child spans are the fan-out ones.
        assert {s["name"].split(" ", 1)[0] for s in spans if s["parent"] == split["id"]} == {"fan-out"}
        assert ["runtime call", "published"] == [e for e in split["events"] if e in ("runtime call", "published")]

        # One fan-out span per child under the split hop; each child's first flaky hop hangs below its span.
        fan_outs = [s for s in spans if s["name"].startswith("fan-out ") and s["parent"] == split["id"]]
        assert sorted(s["tags"]["asya.envelope_id"] for s in fan_outs) == sorted([root, f"{root}-1"])
        first_attempts = [h for h in hops(spans, "flaky") if h["tags"]["asya.attempt"] == 1]
        assert {by_id[h["parent"]]["name"] for h in first_attempts} == {f"fan-out {root}", f"fan-out {root}-1"}

        # Item 0 failed once: the error type on the span, a retry event, then attempt 2 below it.
        (failed,) = [h for h in first_attempts if h["tags"]["asya.outcome"] == "retried"]
        assert failed["tags"]["error.type"] == "trace_handlers.TransientError"
        assert "retry scheduled" in failed["events"] and "exception" in failed["events"]
        (retried,) = [h for h in hops(spans, "flaky") if h["tags"]["asya.attempt"] == 2]
        assert retried["parent"] == failed["id"] and "retry" in retried["events"]
        assert retried["tags"]["asya.outcome"] == "succeeded"
        fields = [{f["key"]: f["value"] for f in log["fields"]} for log in failed["logs"]]
        call = next(f for f in fields if f.get("event") == "runtime call")
        assert call["error.type"] == "trace_handlers.TransientError" and call["duration_ms"] >= 0

        # finish and happy-end continue below the successful flaky hops.
        for finish in hops(spans, "finish"):
            assert by_id[finish["parent"]]["name"] == "process flaky"
            assert by_id[finish["parent"]]["tags"]["asya.outcome"] == "succeeded"
        assert {by_id[h["parent"]]["name"] for h in hops(spans, "happy-end")} == {"process finish"}

        # The handler's own log lines carry the trace id and its hop's span id (runtime: no OTel).
        lines = [json.loads(line) for line in mesh.log("split", "runtime").splitlines() if line.startswith("{")]
        (logged,) = [line for line in lines if line.get("msg") == "splitting into 2 items"
                     and line.get("envelope_id") == root]
        assert (logged["trace_id"], logged["span_id"]) == (CALLER_TRACE, split["id"])

        # The caller's tracestate travels on; the final envelope continues the same trace.
        final = mesh.final_envelope(root)
        assert final["headers"]["traceparent"].split("-")[1] == CALLER_TRACE
        assert final["headers"]["tracestate"] == "vendor=1"

        # asya trace: the same hops from the status store, with queue wait and handler time.
        trace = json.loads(asya(mesh, "trace", root, "--json"))
        assert trace["status"] == "succeeded" and trace["trace_ids"] == [CALLER_TRACE]
        seen = [(h["envelope_id"], h["actor"], h["attempt"]) for h in trace["hops"]]
        assert sorted(seen) == sorted([(root, "split", 1), (root, "flaky", 1), (root, "flaky", 2),
                                       (f"{root}-1", "flaky", 1), (root, "finish", 1), (f"{root}-1", "finish", 1)])
        span_ids = {s["id"] for s in spans}
        assert all(h["span_id"] in span_ids for h in trace["hops"])
        # Every hop after the first knows how long it waited in its queue (the CLI sets no publish time).
        assert all(h["queue_wait"] is not None and h["queue_wait"] >= 0 for h in trace["hops"] if h["actor"] != "split")
        assert all(h["handler"] is not None and h["handler"] >= 0 for h in trace["hops"])
        table = asya(mesh, "trace", root)
        assert CALLER_TRACE in table and "flaky" in table and "queue wait" in table
    finally:
        mesh.stop()


def test_a_malformed_traceparent_starts_a_new_trace_and_is_logged_and_the_gateway_continues_one(tmp_path, jaeger):
    # Tracing turned on by the actor's values file (as in the chart); asya dev traces the crew alike.
    mesh = start_mesh(tmp_path, None, None, actors=[
        {"name": "relay", "handler": "trace_handlers.streamer", "resiliency": policy(1),
         "tracing": {"enabled": True, "endpoint": jaeger.otlp_endpoint}},
        {"name": "slow", "handler": "trace_handlers.slow", "tracing": {"enabled": True, "endpoint": jaeger.otlp_endpoint},
         "resiliency": {"actorTimeout": "1s", "policies": {"default": {"maxAttempts": 1}}}}])
    try:
        ids = [f"bad-{uuid.uuid4().hex[:8]}", f"none-{uuid.uuid4().hex[:8]}"]
        asya(mesh, "send", "--route", "relay", "--payload", "{}", "--id", ids[0],
             "--header", "traceparent=00-not-a-trace-id-01")
        asya(mesh, "send", "--route", "relay", "--payload", "{}", "--id", ids[1])
        for envelope_id in ids:
            assert mesh.wait_final(envelope_id, timeout=60)["status"] == "succeeded"
        warning = wait_for(lambda: next((json.loads(line) for line in mesh.log("relay", "sidecar").splitlines()
                                         if "malformed traceparent" in line and ids[0] in line), None),
                           30, what="the malformed-traceparent warning")
        assert warning["traceparent"] == "00-not-a-trace-id-01" and warning["level"] == "warning"
        new_trace = warning["trace_id"]
        final = mesh.final_envelope(ids[0])
        assert final["headers"]["traceparent"].split("-")[1] == new_trace
        spans = wait_trace(jaeger, new_trace, lambda s: len(hops(s, "relay")) == 1 and len(hops(s, "happy-end")) == 1)
        (relay,) = hops(spans, "relay")
        assert relay["parent"] is None and "malformed traceparent" in relay["events"]
        assert relay["tags"]["asya.fly_chunks"] == 2  # FLY chunks are counted on the hop
        # Without any traceparent the first hop starts a trace of its own.
        started = mesh.final_envelope(ids[1])["headers"]["traceparent"].split("-")[1]
        assert started != new_trace
        spans = wait_trace(jaeger, started, lambda s: len(hops(s, "relay")) == 1)
        assert hops(spans, "relay")[0]["parent"] is None

        # The dev gateway continues an HTTP caller's W3C trace context (POST /envelopes).
        import httpx

        url = wait_for(lambda: (mesh.state / "gateway.url").exists() and (mesh.state / "gateway.url").read_text().strip(),
                       60, what="the dev gateway's URL")
        trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        response = httpx.post(f"{url}/envelopes", json={"route": ["relay"], "payload": {"via": "gateway"}},
                              headers={"traceparent": f"00-{trace_id}-{span_id}-01"}, timeout=30)
        assert response.status_code == 202, response.text
        assert mesh.wait_final(response.json()["id"], timeout=60)["status"] == "succeeded"
        spans = wait_trace(jaeger, trace_id, lambda s: len(hops(s, "relay")) == 1)
        assert hops(spans, "relay")[0]["parent"] == span_id

        # actorTimeout: an event on the hop, the error type recorded, error-end continues the trace.
        stuck = mesh.send(["slow"], {"sleep": 30})
        assert mesh.wait_final(stuck["id"], timeout=90)["status"] == "failed"
        stuck_trace = mesh.final_envelope(stuck["id"])["headers"]["traceparent"].split("-")[1]
        spans = wait_trace(jaeger, stuck_trace, lambda s: len(hops(s, "slow")) == 1 and len(hops(s, "error-end")) == 1)
        (slow,) = hops(spans, "slow")
        assert "actorTimeout" in slow["events"] and slow["tags"]["error.type"] == "ActorTimeout"
        assert slow["tags"]["asya.outcome"] == "failed"
        assert hops(spans, "error-end")[0]["parent"] == slow["id"]
    finally:
        mesh.stop()


def _metrics_port(mesh: Mesh, actor: str) -> int:
    line = next(line for line in mesh.log(actor, "sidecar").splitlines() if '"sidecar ready"' in line)
    return json.loads(line)["metrics_port"]


def _dropped(port: int) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('asya_trace_spans_dropped_total{reason="export_failed"}'))


def test_with_the_backend_down_every_envelope_still_completes(tmp_path):
    from tests.support.require import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    mesh = start_mesh(tmp_path, dead, None, extra_env={"OTEL_EXPORTER_OTLP_TIMEOUT_SECONDS": "1"})
    try:
        roots = [f"down-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
        for root in roots:
            mesh.send(["split", "flaky", "finish"], {"n": 2, "run": root}, id=root)
        for root in roots:
            record = mesh.wait_final(root, timeout=120)
            assert record["status"] == "succeeded", record
        port = _metrics_port(mesh, "split")
        assert wait_for(lambda: _dropped(port) > 0, 60, interval=0.5, what="export failures counted")
    finally:
        mesh.stop()
