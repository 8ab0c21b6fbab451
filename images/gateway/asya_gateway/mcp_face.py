"""MCP face: every configured tool is an MCP tool at ``/mcp`` (Streamable HTTP), on the official ``mcp`` SDK.

The SDK's low-level ``Server`` is used (not ``MCPServer``) because it hands our tools config's JSON
Schemas to clients verbatim. A ``tools/call`` submits through ``GatewayService`` and follows the
envelope: each hop and FLY chunk becomes a progress notification, the final record becomes structured
content (a failed envelope is an error result naming the error type and message), and a call that
outlives the tool's timeout answers ``{status: running, envelope_id, stream_url}``; the tools
``asya_status``, ``asya_resume`` and ``asya_cancel`` let the agent continue. A pause asks the person
through elicitation: on protocol 2026-07-28 as an ``InputRequiredResult`` (stateless, any replica
answers the retry), on 2025-06-18/2025-11-25 as an ``elicitation/create`` request on the call's stream;
clients without elicitation get a ``paused`` result and use ``asya_resume``. Bearer API keys are checked
by the SDK's ``BearerAuthBackend`` (see :mod:`asya_gateway.mcp_http`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.routing import Route

from asya_common.settings import load_settings
from asya_gateway import auth, face_metrics
from asya_gateway.errors import GatewayError, PauseConflict, PauseInputInvalid, PauseNotFound, UnknownTool
from asya_gateway.follow import Outcome, failed, follow, progress_message, summary
from asya_gateway.mcp_http import McpSettings, endpoint

PATH = "/mcp"
PAUSE_KEY = "asya_pause"
STATE_PREFIX = "asya1:"
BUILTINS = ("asya_status", "asya_resume", "asya_cancel")
_ELICIT_TYPES = {"string", "number", "integer", "boolean"}


def _json_text(value: Any) -> list[types.TextContent]:
    return [types.TextContent(text=json.dumps(value, ensure_ascii=False))]


def elicitable(schema: Any) -> bool:
    """True when a pause schema fits MCP elicitation's flat form (an object of primitive properties)."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return False
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return False
    for prop in props.values():
        if not isinstance(prop, dict):
            return False
        kind = prop.get("type")
        if kind in _ELICIT_TYPES:
            continue
        items = prop.get("items")
        if kind == "array" and isinstance(items, dict) and items.get("type") == "string" and "enum" in items:
            continue
        return False
    return True


class McpFace:
    """The MCP server of one gateway app."""

    def __init__(self, service: Any, keys: auth.ApiKeys, public_url: str = ""):
        self.service = service
        self.log = service.log.bind(face="mcp") if getattr(service, "log", None) is not None else None
        self.keys = keys
        self.public_url = public_url.rstrip("/")
        clash = sorted(set(BUILTINS) & {t.name for t in service.tools()})
        if clash:
            raise ValueError(f"tools config: tool names {clash} are reserved for the MCP face; rename them")
        self.server: Server = Server("asya-gateway", version="0.1.0", title="Asya gateway",
                                     instructions="Each tool runs an Asya pipeline. A result with status "
                                                  "'running' or 'paused' continues with asya_status / asya_resume.",
                                     on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    # -- auth --------------------------------------------------------------------------------
    def principal(self, ctx: Any) -> auth.Principal:
        """The caller: the key the SDK's bearer check accepted (anonymous admin when keys are off)."""
        if self.keys.disabled:
            return auth.ANONYMOUS
        request = ctx.request
        user = request.scope.get("user") if request is not None else None
        if isinstance(user, AuthenticatedUser):
            token = user.access_token
            return auth.Principal(token.client_id, frozenset(token.scopes))
        raise MCPError(code=types.INVALID_REQUEST, message="unauthenticated: send Authorization: Bearer <API key>")

    # -- tools/list --------------------------------------------------------------------------
    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        """The configured tools with their own JSON Schemas, then the three continuation tools."""
        tools = [types.Tool(name=t.name, description=t.description or f"Asya pipeline {' -> '.join(t.route)}",
                            input_schema=t.input_schema) for t in self.service.tools()]
        envelope_id = {"type": "string", "description": "envelope_id from an earlier result"}
        wait = {"type": "number", "minimum": 0, "maximum": 3600, "default": 0,
                "description": "seconds to wait for the end (progress is reported meanwhile)"}
        tools += [
            types.Tool(name="asya_status", description="Status (and result) of an envelope; waits up to 'wait' s.",
                       input_schema={"type": "object", "required": ["envelope_id"], "additionalProperties": False,
                                     "properties": {"envelope_id": envelope_id, "wait": wait}}),
            types.Tool(name="asya_resume", description="Answer a paused envelope's prompt with 'input' (must "
                       "match the pause's schema); waits up to 'wait' s.",
                       input_schema={"type": "object", "required": ["envelope_id", "input"],
                                     "additionalProperties": False,
                                     "properties": {"envelope_id": envelope_id, "input": {}, "wait": wait}}),
            types.Tool(name="asya_cancel", description="Cancel an envelope that is not final yet.",
                       input_schema={"type": "object", "required": ["envelope_id"], "additionalProperties": False,
                                     "properties": {"envelope_id": envelope_id}}),
        ]
        return types.ListToolsResult(tools=tools)

    # -- tools/call --------------------------------------------------------------------------
    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        """Submits (or continues) an envelope and answers with its outcome (counted by outcome)."""
        outcome = "error"
        try:
            result = await self._call(ctx, params)
            if isinstance(result, types.InputRequiredResult):
                outcome = "input_required"
            else:
                data = result.structured_content or {}
                outcome = str(data.get("status") or (data.get("error") or {}).get("code") or "error")
            return result
        except anyio.get_cancelled_exc_class():
            outcome = "abandoned"
            raise
        finally:
            face_metrics.count(self.service, "mcp", "tools/call", outcome)

    async def _call(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        principal = self.principal(ctx)
        args = params.arguments or {}
        try:
            if params.request_state and params.request_state.startswith(STATE_PREFIX):
                return await self._continue(ctx, params, principal)
            if params.name == "asya_status":
                return await self._status(ctx, principal, _str_arg(args, "envelope_id"), _wait(args))
            if params.name == "asya_resume":
                envelope_id = _str_arg(args, "envelope_id")
                if "input" not in args:
                    raise PauseInputInvalid("asya_resume needs 'input'", "$.input")
                await self.service.resume(envelope_id, args["input"], principal)
                return await self._status(ctx, principal, envelope_id, _wait(args))
            if params.name == "asya_cancel":
                record = await self.service.cancel(_str_arg(args, "envelope_id"), principal)
                data = summary(record)
                return types.CallToolResult(content=[types.TextContent(text=f"canceled {record['id']}")],
                                            structured_content=data)
            tool = self._tool(params.name)
            record = await self.service.submit(tool=tool.name, arguments=args, principal=principal)
            if self.log is not None:
                self.log.info("mcp call", tool=tool.name, envelope_id=record["id"], key=principal.key_id)
            return await self._drive(ctx, principal, record["id"], tool.timeout_seconds,
                                     cancel_on_disconnect=tool.cancel_on_disconnect)
        except UnknownTool as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=exc.message) from None
        except GatewayError as exc:
            return types.CallToolResult(is_error=True, content=[types.TextContent(text=f"{exc.code}: {exc.message}")],
                                        structured_content=exc.to_json())

    def _tool(self, name: str) -> Any:
        return self.service.tool(name)

    async def _status(self, ctx: Any, principal: auth.Principal, envelope_id: str, wait: float) -> Any:
        if wait > 0:
            return await self._drive(ctx, principal, envelope_id, wait)
        record = await self.service.get(envelope_id, principal)
        if record["status"] == "paused":
            return self._paused({"envelope_id": envelope_id}, envelope_id, await self._pause_of(envelope_id, principal))
        return self._result(record, ctx)

    async def _pause_of(self, envelope_id: str, principal: auth.Principal) -> dict[str, Any]:
        outcome = await follow(self.service, envelope_id, principal, timeout=1.0)
        return outcome.pause

    async def _drive(self, ctx: Any, principal: auth.Principal, envelope_id: str, timeout: float, *,
                     after_seq: int = 0, cancel_on_disconnect: bool = False) -> Any:
        """Follows the envelope, reporting progress, until final / paused / timeout; elicits at a pause."""
        counter = {"n": 0}

        async def report(event: Any) -> None:
            if event.kind == "created":  # the caller knows it submitted; report work from the first hop on
                return
            counter["n"] += 1
            with contextlib.suppress(Exception):  # progress is best effort; never fail the call for it
                await ctx.session.report_progress(counter["n"], None, progress_message(event))

        try:
            while True:
                outcome: Outcome = await follow(self.service, envelope_id, principal, timeout=timeout,
                                                after_seq=after_seq, on_event=report)
                after_seq = outcome.last_seq
                if outcome.kind == "final":
                    return self._result(outcome.record, ctx)
                if outcome.kind == "timeout":
                    return self._running(ctx, envelope_id, timeout)
                pause = outcome.pause
                if not self._can_elicit(ctx, pause):
                    return self._paused({"envelope_id": envelope_id}, envelope_id, pause)
                if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    return self._input_required(envelope_id, pause, after_seq, timeout)
                if not await self._elicit_and_resume(ctx, pause, principal):
                    return self._paused({"envelope_id": envelope_id}, envelope_id, pause)
        except anyio.get_cancelled_exc_class():
            if cancel_on_disconnect:  # the client went away; the tools config asks to stop the work too
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.service.cancel(envelope_id, principal)
                    if self.log is not None:
                        self.log.info("mcp call abandoned; envelope canceled", envelope_id=envelope_id)
            raise

    async def _elicit_and_resume(self, ctx: Any, pause: dict[str, Any], principal: auth.Principal) -> bool:
        """Asks on the call's stream (2025 sessions) until an answer fits the schema; False when declined."""
        prompt = pause.get("prompt") or "Input needed"
        while True:
            answer = await ctx.session.elicit_form(prompt, pause["schema"], related_request_id=ctx.request_id)
            if answer.action != "accept":
                return False
            try:
                await self._resume_quietly(pause["envelope_id"], answer.content or {}, principal)
                return True
            except PauseInputInvalid as exc:
                prompt = f"{pause.get('prompt') or 'Input needed'} (last answer refused: {exc.message})"

    async def _resume_quietly(self, envelope_id: str, value: Any, principal: auth.Principal) -> None:
        try:
            await self.service.resume(envelope_id, value, principal)
        except (PauseConflict, PauseNotFound):
            pass  # someone else answered first; following goes on either way

    def _can_elicit(self, ctx: Any, pause: dict[str, Any]) -> bool:
        caps = ctx.session.client_capabilities
        if caps is None or caps.elicitation is None or not elicitable(pause.get("schema")):
            return False
        return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or ctx.session.can_send_request

    def _input_required(self, root_id: str, pause: dict[str, Any], after_seq: int, timeout: float) -> Any:
        state = STATE_PREFIX + json.dumps({"root": root_id, "paused": pause["envelope_id"], "seq": after_seq,
                                           "timeout": timeout}, separators=(",", ":"))
        request = types.ElicitRequest(params=types.ElicitRequestFormParams(
            message=pause.get("prompt") or "Input needed", requested_schema=pause["schema"]))
        return types.InputRequiredResult(input_requests={PAUSE_KEY: request}, request_state=state)

    async def _continue(self, ctx: Any, params: types.CallToolRequestParams, principal: auth.Principal) -> Any:
        """The retry of a call that answered ``InputRequiredResult``: resume with the person's answer."""
        try:
            state = json.loads(params.request_state[len(STATE_PREFIX):])
            root, paused, seq, timeout = str(state["root"]), str(state["paused"]), int(state["seq"]), \
                float(state["timeout"])
        except (ValueError, KeyError, TypeError):
            raise MCPError(code=types.INVALID_PARAMS, message="invalid requestState") from None
        answer = (params.input_responses or {}).get(PAUSE_KEY)
        action = getattr(answer, "action", None) or (answer.get("action") if isinstance(answer, dict) else None)
        content = getattr(answer, "content", None) if not isinstance(answer, dict) else answer.get("content")
        if action != "accept":
            return self._paused({"envelope_id": root}, root, await self._pause_of(root, principal))
        try:
            await self._resume_quietly(paused, content or {}, principal)
        except PauseInputInvalid as exc:
            pause = {"envelope_id": paused, "schema": None, "prompt": ""}
            pause.update((await self._pause_of(root, principal)) or {})
            pause["prompt"] = f"{pause.get('prompt') or 'Input needed'} (last answer refused: {exc.message})"
            return self._input_required(root, pause, seq, timeout)
        return await self._drive(ctx, principal, root, timeout, after_seq=seq)

    # -- results -----------------------------------------------------------------------------
    def _result(self, record: dict[str, Any], ctx: Any = None) -> types.CallToolResult:
        data = summary(record)
        if data["status"] in ("running", "pending"):
            data["stream_url"] = self._stream_url(record["id"], ctx)
            return types.CallToolResult(content=_json_text(data), structured_content=data)
        if failed(record):
            err = data.get("error") or next((b["error"] for b in data.get("branches", []) if "error" in b), {})
            text = f"{err.get('type', 'Error')}: {err.get('message', '')}"
            return types.CallToolResult(is_error=True, content=[types.TextContent(text=text)], structured_content=data)
        return types.CallToolResult(content=_json_text(data.get("result") if "branches" not in data else data),
                                    structured_content=data)

    def _running(self, ctx: Any, envelope_id: str, timeout: float) -> types.CallToolResult:
        data = {"status": "running", "envelope_id": envelope_id, "stream_url": self._stream_url(envelope_id, ctx)}
        text = (f"still running after {timeout:g}s (nothing was canceled); call asya_status with envelope_id "
                f"{envelope_id!r} and wait > 0 to keep waiting")
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=data)

    def _paused(self, data: dict[str, Any], root_id: str, pause: dict[str, Any]) -> types.CallToolResult:
        data = {"status": "paused", "envelope_id": root_id,
                "paused_envelope_id": pause.get("envelope_id", root_id), "prompt": pause.get("prompt", ""),
                "schema": pause.get("schema")}
        text = (f"paused: {data['prompt']} - answer with asya_resume(envelope_id={data['paused_envelope_id']!r}, "
                f"input=...) matching schema {json.dumps(data['schema'])}")
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=data)

    def _stream_url(self, envelope_id: str, ctx: Any) -> str:
        base = self.public_url
        request = getattr(ctx, "request", None)
        if not base and request is not None:
            base = str(request.base_url).rstrip("/")
        return f"{base}/envelopes/{envelope_id}/stream"


def _str_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise PauseInputInvalid(f"'{name}' must be a non-empty string", f"$.{name}")
    return value


def _wait(args: dict[str, Any]) -> float:
    value = args.get("wait", 0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
        raise PauseInputInvalid("'wait' must be a number of seconds between 0 and 3600", "$.wait")
    return float(value)


def build(service: Any, keys: auth.ApiKeys, *, loopback: bool, public_url: str = "",
          settings: McpSettings | None = None) -> tuple[Any, Any]:
    """The ``/mcp`` ASGI endpoint and its session manager (whose ``run()`` must wrap the app's lifespan)."""
    return endpoint(McpFace(service, keys, public_url).server, keys, loopback=loopback, settings=settings)


def mount(app: Any, service: Any, *, environ: dict[str, str] | None = None) -> None:
    """Adds ``/mcp`` to the gateway app; the SDK's session manager runs inside the app's lifespan."""
    gateway_settings = app.state.settings
    asgi, manager = build(service, app.state.api_keys, loopback=gateway_settings.loopback,
                          public_url=gateway_settings.public_url, settings=load_settings(McpSettings, environ))
    app.router.routes.append(Route(PATH, endpoint=asgi))
    app.state.lifespan_hooks.append(manager.run)
