"""The REST/SSE face: HTTP routes over :class:`~asya_gateway.service.GatewayService`.

Every error is a JSON body ``{"error": {"code", "message", ...}}`` with a 4xx/5xx status. Request bodies
are read with a size limit before they are parsed, so an oversized body is refused without buffering it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asya_gateway import errors
from asya_gateway.auth import Principal, bearer_token
from asya_gateway.errors import GatewayError
from asya_gateway.tracing import trace_headers


def service_of(request: Request) -> Any:
    return request.app.state.service


def principal_of(request: Request) -> Principal:
    """The caller of ``request``.

    Raises:
        Unauthorized: A key is required and none or an unknown one was given.
    """
    principal = request.app.state.api_keys.authenticate(bearer_token(request.headers.get("authorization")))
    if principal is None:
        given = "no" if not request.headers.get("authorization") else "an unknown"
        raise errors.Unauthorized(f"{given} API key: send 'Authorization: Bearer <token>'")
    return principal


async def read_json(request: Request) -> Any:
    """The request body as JSON, read up to ``ASYA_GATEWAY_MAX_BODY_BYTES``.

    Raises:
        PayloadTooLarge: The body is over the limit. BadRequest: it is not JSON.
    """
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"request body is not JSON: {exc}", code="invalid_json") from None


def error_response(exc: GatewayError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=headers)


def _endpoint(name: str):
    """Wraps a handler: maps GatewayError to JSON errors and counts requests."""

    def wrap(handler):
        async def endpoint(request: Request) -> Response:
            metrics = request.app.state.metrics
            started = time.monotonic()
            try:
                response = await handler(request)
            except GatewayError as exc:
                response = error_response(exc)
            metrics.requests.labels(route=name, code=str(response.status_code)).inc()
            metrics.latency.labels(route=name).observe(time.monotonic() - started)
            return response

        return endpoint

    return wrap


def urls(request: Request, envelope_id: str) -> dict[str, str]:
    base = request.app.state.settings.public_url.rstrip("/")
    return {"status_url": f"{base}/envelopes/{envelope_id}", "stream_url": f"{base}/envelopes/{envelope_id}/stream",
            "trace_url": f"{base}/ui/envelopes/{envelope_id}"}


@_endpoint("submit")
async def submit(request: Request) -> Response:
    principal = principal_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.BadRequest("body must be a JSON object: {\"tool\", \"arguments\"} or {\"route\", \"payload\"}")
    unknown = set(body) - {"tool", "arguments", "route", "payload", "headers"}
    if unknown:
        raise errors.BadRequest(f"unknown keys {sorted(unknown)} (allowed: tool, arguments, route, payload, headers)")
    if "arguments" in body and not isinstance(body["arguments"], dict):
        raise errors.BadRequest("'arguments' must be a JSON object")
    record = await service_of(request).submit(
        tool=body.get("tool"), arguments=body.get("arguments"), route=body.get("route"),
        payload=body.get("payload"), headers=trace_headers(request.headers, body.get("headers")), principal=principal)
    links = urls(request, record["id"])
    return JSONResponse({**record, **links}, status_code=202, headers={"Location": links["status_url"]})


@_endpoint("get")
async def get_envelope(request: Request) -> Response:
    record = await service_of(request).get(request.path_params["id"], principal_of(request))
    return JSONResponse(record)


def _since(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise errors.BadRequest(f"since={raw!r} is neither unix seconds nor an ISO 8601 time") from None


@_endpoint("list")
async def list_envelopes(request: Request) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        raise errors.BadRequest(f"limit={q.get('limit')!r} is not an integer") from None
    records, cursor = await service_of(request).list(
        principal_of(request), status=q.get("status") or None, actor=q.get("actor") or None,
        since=_since(q.get("since")), limit=limit, cursor=q.get("cursor") or None)
    return JSONResponse({"records": records, "next_cursor": cursor})


@_endpoint("stream")
async def stream(request: Request) -> Response:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise errors.BadRequest(f"Last-Event-ID {raw!r} is not a sequence number") from None
    service = service_of(request)
    principal = principal_of(request)
    envelope_id = request.path_params["id"]
    events = await service.open_stream(envelope_id, principal, after_seq=after)
    body = sse_body(events, request.app.state.settings.keepalive, request.app.state.metrics,
                    lambda: service.get(envelope_id, principal))
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


_FRAMES: "OrderedDict[int, str]" = OrderedDict()
_FRAMES_KEPT = 4096


def sse_frame(event: Any) -> str:
    """One SSE message: ``id:`` = seq, ``event:`` = kind, ``data:`` = the event as JSON.

    Frames are cached by seq (an event never changes), so an event followed by 1,000 clients is
    serialised once, not 1,000 times.
    """
    frame = _FRAMES.get(event.seq)
    if frame is None:
        frame = f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(event.to_dict(), ensure_ascii=False)}\n\n"
        _FRAMES[event.seq] = frame
        if len(_FRAMES) > _FRAMES_KEPT:
            _FRAMES.popitem(last=False)
    return frame


async def sse_body(events: AsyncIterator[Any], keepalive: float, metrics: Any, final) -> AsyncIterator[str]:
    """Frames events, with a comment line every ``keepalive`` seconds of silence and an ``end`` event last.

    Events are pumped by a separate task into a queue: waiting on the queue with a timeout never
    cancels the events iterator itself.
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    done = object()

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        except Exception as exc:  # surfaced to the client as an error event, then the stream ends
            await queue.put(exc)
        finally:
            await queue.put(done)

    task = asyncio.create_task(pump())
    metrics.sse_clients.inc()
    try:
        yield "retry: 1000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is done:
                break
            if isinstance(item, Exception):
                yield f"event: error\ndata: {json.dumps({'message': f'{type(item).__name__}: {item}'})}\n\n"
                return
            metrics.sse_events.labels(kind=item.kind).inc()
            yield sse_frame(item)
        yield f"event: end\ndata: {json.dumps(await final(), ensure_ascii=False)}\n\n"
    finally:
        metrics.sse_clients.dec()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _json_object(request: Request, key: str) -> Any:
    body = await read_json(request)
    if not isinstance(body, dict) or key not in body:
        raise errors.BadRequest(f"body must be a JSON object with {key!r}")
    return body[key]


@_endpoint("resume")
async def resume(request: Request) -> Response:
    principal = principal_of(request)
    value = await _json_object(request, "input")
    return JSONResponse(await service_of(request).resume(request.path_params["id"], value, principal))


@_endpoint("cancel")
async def cancel(request: Request) -> Response:
    return JSONResponse(await service_of(request).cancel(request.path_params["id"], principal_of(request)))


@_endpoint("tools")
async def list_tools(request: Request) -> Response:
    principal_of(request)
    return JSONResponse({"tools": [t.describe() for t in service_of(request).tools()]})


routes = [
    Route("/envelopes", submit, methods=["POST"]),
    Route("/envelopes", list_envelopes, methods=["GET"]),
    Route("/envelopes/{id}", get_envelope, methods=["GET"]),
    Route("/envelopes/{id}/stream", stream, methods=["GET"]),
    Route("/envelopes/{id}/resume", resume, methods=["POST"]),
    Route("/envelopes/{id}/cancel", cancel, methods=["POST"]),
    Route("/tools", list_tools, methods=["GET"]),
]
