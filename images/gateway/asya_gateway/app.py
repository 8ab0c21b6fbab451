"""The ASGI app: REST/SSE, probes, metrics and the trace page, plus the MCP/A2A faces when installed.

``create_app(settings)`` builds a Starlette app whose lifespan opens the status store, connects the
transport and starts the one :class:`~asya_common.status.feed.EventFeed` of the process; tools and API
keys are loaded eagerly so a bad file fails at start with a message naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asya_common.logging import get_logger
from asya_common.settings import load_settings
from asya_common.status import open_store
from asya_common.status.feed import EventFeed
from asya_common.status.pause import expire_pauses
from asya_common.transport import TransportSettings, create_transport

from asya_gateway import rest, ui
from asya_gateway.auth import ApiKeys
from asya_gateway.metrics import GatewayMetrics
from asya_gateway.service import GatewayService
from asya_gateway.settings import GatewaySettings
from asya_gateway.tools import load_tools

FACES = ("asya_gateway.mcp_face", "asya_gateway.a2a_face")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    service = getattr(request.app.state, "service", None)
    if service is None:
        return PlainTextResponse("starting", status_code=503)
    try:
        await asyncio.wait_for(asyncio.to_thread(service.store.get, "readyz-probe"), 5)
    except Exception as exc:  # any store failure means: do not send traffic here
        return PlainTextResponse(f"status store unavailable: {type(exc).__name__}: {exc}", status_code=503)
    return PlainTextResponse("ok")


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    return JSONResponse({"error": {"code": code, "message": f"{request.method} {request.url.path}: "
                                                            f"{getattr(exc, 'detail', '')}"}}, status_code=status)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def expire_loop(service: GatewayService, interval: float, log: Any) -> None:
    """Fails or resumes expired pauses every ``interval`` seconds (the store's claim makes it once per pause)."""
    while True:
        await asyncio.sleep(interval)
        try:
            handled = await expire_pauses(service.store, service.transport, queue_prefix=service.queue_prefix)
        except Exception as exc:  # noqa: BLE001 - broker or store briefly down: try again next round
            log.warning("pause expiry failed; retrying", error=f"{type(exc).__name__}: {exc}")
            continue
        for envelope_id in handled:
            log.info("pause expired", envelope_id=envelope_id)


def create_app(settings: GatewaySettings | None = None, transport_settings: TransportSettings | None = None,
               environ: dict[str, str] | None = None) -> Starlette:
    """Builds the gateway app.

    Args:
        settings: Gateway settings (default: from the environment).
        transport_settings: The broker (default: from the environment).
        environ: Environment to read instead of ``os.environ``.

    Raises:
        ToolsError, ApiKeysError: A config file is invalid (at build time, not at the first request).
    """
    settings = settings or load_settings(GatewaySettings, environ)
    transport_settings = transport_settings or load_settings(TransportSettings, environ)
    tools = load_tools(settings.tools_file) if settings.tools_file else {}
    api_keys = ApiKeys.load(settings.api_keys_file)
    gateway_metrics = GatewayMetrics()
    log = get_logger(component="gateway")

    service = GatewayService(None, None, None, tools, queue_prefix=transport_settings.queue_prefix,
                             metrics=gateway_metrics, log=log)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        store = await asyncio.to_thread(open_store, settings.status_db)
        transport = create_transport(transport_settings)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(asyncio.to_thread, store.close)
            await transport.connect()
            stack.push_async_callback(transport.close)
            # SQLite is polled; PostgreSQL wakes the feed with LISTEN/NOTIFY, its poll is only a safety net.
            poll = settings.poll_interval if store.dialect == "sqlite" else max(settings.poll_interval, 1.0)
            feed = EventFeed(store, poll_interval=poll)
            await feed.start()
            stack.push_async_callback(feed.close)
            service.attach(store, transport, feed)
            if settings.expire_interval > 0:
                expirer = asyncio.create_task(expire_loop(service, settings.expire_interval, log))
                stack.push_async_callback(_cancel, expirer)
            for hook in app.state.lifespan_hooks:  # faces (MCP, A2A) that need tasks of their own
                await stack.enter_async_context(hook())
            app.state.service = service
            log.info("gateway ready", tools=sorted(tools), auth=not api_keys.disabled, transport=transport_settings.kind)
            yield

    app = Starlette(
        routes=[*rest.routes, *ui.routes, Route("/healthz", healthz), Route("/readyz", readyz),
                Route("/metrics", metrics)],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.settings, app.state.api_keys, app.state.metrics = settings, api_keys, gateway_metrics
    app.state.lifespan_hooks = []
    for module_name in FACES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.mount(app, service)
    return app
