"""A real Jaeger (v2, built by ``make tools-jaeger``) as a process: OTLP/HTTP in, its query HTTP API out.

Every port is a free loopback port; storage is in memory. The tests read traces back over
``/api/traces`` exactly as the Jaeger UI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.require import free_port, port_open

TOOLS_CACHE = Path(os.environ.get("ASYA_TOOLS_CACHE", Path.home() / ".cache" / "asya-tools"))
JAEGER_VERSION = os.environ.get("JAEGER_VERSION", "v1.76.0")


def jaeger_binary() -> Path | None:
    """The pinned Jaeger binary (``$ASYA_JAEGER`` or the tools cache), or None when not built."""
    for candidate in (os.environ.get("ASYA_JAEGER"), TOOLS_CACHE / "jaeger" / JAEGER_VERSION / "bin" / "jaeger"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class Jaeger:
    """One Jaeger process.

    Args:
        binary: The jaeger executable.
        workdir: Where its config and log go.
    """

    def __init__(self, binary: Path, workdir: Path):
        self.binary, self.workdir = binary, workdir
        self.otlp_port, self.query_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    @property
    def otlp_endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for the processes under test."""
        return f"http://127.0.0.1:{self.otlp_port}"

    def start(self, timeout: float = 60) -> "Jaeger":
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "jaeger.yaml"
        config.write_text(_CONFIG.format(health=free_port(), query=self.query_port, query_grpc=free_port(),
                                         otlp=self.otlp_port))
        self.log = open(self.workdir / "jaeger.log", "w")
        self.process = subprocess.Popen([str(self.binary), "--config", str(config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (port_open(self.otlp_port) and port_open(self.query_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jaeger did not start: {(self.workdir / 'jaeger.log').read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def _get(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.query_port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as the query API returns it (``spans``, ``processes``), or None when unknown."""
        found = self._get(f"/api/traces/{trace_id}")
        data = (found or {}).get("data") or []
        return data[0] if data else None

    def services(self) -> list[str]:
        return (self._get("/api/services") or {}).get("data") or []

    def find(self, service: str, tags: dict[str, str] | None = None, lookback: str = "1h") -> list[dict[str, Any]]:
        """Traces with a span of ``service`` matching ``tags``."""
        query = {"service": service, "lookback": lookback, "limit": "100"}
        if tags:
            query["tags"] = json.dumps(tags)
        return (self._get("/api/traces", **query) or {}).get("data") or []


def spans_of(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans flattened for assertions: id, parent id, name, service, tags dict and event names."""
    processes = trace.get("processes") or {}
    out = []
    for span in trace["spans"]:
        parents = [r["spanID"] for r in span.get("references") or [] if r.get("refType") == "CHILD_OF"]
        out.append({
            "id": span["spanID"], "parent": parents[0] if parents else None, "name": span["operationName"],
            "service": (processes.get(span["processID"]) or {}).get("serviceName"),
            "tags": {t["key"]: t["value"] for t in span.get("tags") or []},
            "events": [next((f["value"] for f in log["fields"] if f["key"] == "event"), None)
                       for log in span.get("logs") or []],
            "logs": span.get("logs") or [],
        })
    return out
