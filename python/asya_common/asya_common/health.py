"""HTTP endpoints every service exposes: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Served by prometheus-client's WSGI app plus two probe routes on a small stdlib WSGI server in a
daemon thread, so the probes answer even while the service's event loop is busy.
"""

from __future__ import annotations

import threading
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

Probe = Callable[[], tuple[bool, str]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # probes every few seconds would flood the logs
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True


class HealthServer:
    """Serves metrics and probes on ``host:port`` until :meth:`stop`.

    Args:
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        liveness: Returns ``(ok, detail)`` for ``/healthz``.
        readiness: Returns ``(ok, detail)`` for ``/readyz``; defaults to liveness.
        registry: Prometheus registry to expose.
        host: Bind address.
    """

    def __init__(
        self,
        port: int,
        liveness: Probe,
        readiness: Probe | None = None,
        registry: CollectorRegistry = REGISTRY,
        host: str = "0.0.0.0",
    ):
        self._metrics = make_wsgi_app(registry)
        self._probes = {"/healthz": liveness, "/readyz": readiness or liveness}
        self._server = make_server(host, port, self._app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.server_port

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        probe = self._probes.get(path)
        if probe is None:
            return self._metrics(environ, start_response)
        try:
            ok, detail = probe()
        except Exception as exc:  # a probe that raises is a failing probe, never a crashed server
            ok, detail = False, f"probe raised {type(exc).__name__}: {exc}"
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [(detail or ("ok" if ok else "not ok")).encode() + b"\n"]

    def start(self) -> "HealthServer":
        """Starts serving in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self._server.shutdown()
        self._server.server_close()
