"""A2A face: the gateway as an A2A agent, on the official ``a2a-sdk`` (JSON-RPC at ``/a2a``).

The agent card (``/.well-known/agent-card.json``) lists one skill per configured tool and the bearer
API-key security scheme. Requests go through the SDK's JSON-RPC dispatcher to :class:`AsyaRequestHandler`,
an SDK ``RequestHandler`` whose every answer comes from ``GatewayService`` and the status store (see
:mod:`asya_gateway.a2a_tasks`): there is no in-memory task or event queue, so any replica serves
GetTask, ListTasks, CancelTask and SubscribeToTask of a task another replica started.

A new message names its skill in ``metadata.skill`` (optional when one tool is configured) and carries
the tool's arguments as a data part (or JSON text). A message with the ``task_id`` of an
input-required task is the person's answer: its data part (or text) resumes the paused envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import ServerCallContextBuilder, create_jsonrpc_routes
from a2a.types import a2a_pb2 as pb
from a2a.utils.constants import (AGENT_CARD_WELL_KNOWN_PATH, MAX_LIST_TASKS_PAGE_SIZE, PROTOCOL_VERSION_0_3,
                                 PROTOCOL_VERSION_CURRENT)
from a2a.utils.errors import (InternalError, InvalidParamsError, InvalidRequestError, TaskNotCancelableError,
                              TaskNotFoundError, UnsupportedOperationError)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asya_gateway import auth, face_metrics
from asya_gateway import a2a_tasks as at
from asya_gateway.errors import (Conflict, Forbidden, GatewayError, InvalidArguments, NotFound, PauseConflict,
                                 PauseInputInvalid, PauseNotFound, UnknownTool)
from asya_gateway.follow import follow

PATH = "/a2a"
SCHEME = "asyaApiKey"


def a2a_error(exc: GatewayError) -> Exception:
    """The A2A error of a service error (JSON-RPC code and message; the path of a schema error as data)."""
    if isinstance(exc, (NotFound,)) and not isinstance(exc, PauseNotFound):
        return TaskNotFoundError(message=exc.message)
    if isinstance(exc, (InvalidArguments, PauseInputInvalid, UnknownTool, PauseNotFound, PauseConflict)):
        return InvalidParamsError(message=exc.message, data={"code": exc.code, **exc.detail})
    if isinstance(exc, Conflict):
        return TaskNotCancelableError(message=exc.message)
    if isinstance(exc, Forbidden):
        return InvalidRequestError(message=exc.message, data={"code": exc.code})
    return InternalError(message=exc.message)


class PrincipalContextBuilder(ServerCallContextBuilder):
    """Puts the caller's :class:`~asya_gateway.auth.Principal` (from the bearer API key) in the call context."""

    def __init__(self, keys: auth.ApiKeys):
        self.keys = keys

    def build(self, request: Request) -> ServerCallContext:
        principal = self.keys.authenticate(auth.bearer_token(request.headers.get("authorization")))
        return ServerCallContext(state={"principal": principal, "headers": dict(request.headers)})


def _principal(context: ServerCallContext) -> auth.Principal:
    principal = context.state.get("principal")
    if principal is None:  # the route refuses these with 401 first; kept for other transports
        raise InvalidRequestError(message="unauthenticated: send Authorization: Bearer <API key>")
    return principal


class AsyaRequestHandler(RequestHandler):
    """A2A requests answered by ``GatewayService`` and the status store."""

    def __init__(self, service: Any):
        self.service = service

    # -- store reads -------------------------------------------------------------------------
    async def _snapshot(self, task_id: str, principal: auth.Principal) -> tuple[dict, list, str]:
        record = await self.service.get(task_id, principal)
        if record.get("parent_id"):
            raise NotFound(f"{task_id!r} is a fan-out branch; its task is {record.get('root_id')!r}")
        events = await asyncio.to_thread(self.service.store.events, task_id, 0, 100_000)
        stored = await asyncio.to_thread(self.service.store.stored_envelope, task_id)
        headers = ((stored[1] or {}).get("headers") or {}) if stored else {}
        return record, events, str(headers.get(at.CONTEXT_HEADER) or task_id)

    async def _task(self, task_id: str, principal: auth.Principal, include_artifacts: bool = True) -> pb.Task:
        record, events, context_id = await self._snapshot(task_id, principal)
        return at.build_task(record, events, context_id, include_artifacts)

    async def _tool_timeout(self, task_id: str) -> float:
        stored = await asyncio.to_thread(self.service.store.stored_envelope, task_id)
        name = (((stored[1] or {}).get("headers") or {}).get("x-asya-tool")) if stored else None
        try:
            return self.service.tool(name).timeout_seconds if name else 300.0
        except UnknownTool:
            return 300.0

    # -- send --------------------------------------------------------------------------------
    async def _start(self, params: pb.SendMessageRequest, principal: auth.Principal) -> tuple[str, str, int]:
        """Submits a new task, or resumes the input-required task the message names.

        Returns:
            ``(task_id, context_id, after_seq)``: follow the task's events after ``after_seq``.
        """
        message = params.message
        found, value = at.message_value(message)
        if message.task_id:
            record, events, context_id = await self._snapshot(message.task_id, principal)
            waiting = at.paused_ids(record)
            chosen = str(message.metadata["envelope_id"]) if "envelope_id" in message.metadata else None
            if chosen is not None and chosen in waiting:  # several fan-out branches wait: the message names one
                waiting = [chosen]
            if not waiting:
                state = pb.TaskState.Name(at.state_of(record))
                raise InvalidParamsError(message=f"task {message.task_id} is not waiting for input ({state})")
            if not found:
                raise InvalidParamsError(message="the answer needs a data part (or text) with the input")
            last_seq = max((e.seq for e in events), default=0)
            await self.service.resume(waiting[0], value, principal)
            return message.task_id, context_id, last_seq
        skill = _skill(params, self.service.tools())
        if not found:
            value = {}
        if not isinstance(value, dict):
            raise InvalidParamsError(message=f"skill {skill!r} takes a JSON object of arguments as a data part",
                                     data={"code": "invalid_arguments", "path": "$"})
        headers = {at.CONTEXT_HEADER: message.context_id} if message.context_id else None
        record = await self.service.submit(tool=skill, arguments=value, principal=principal, headers=headers)
        return record["id"], message.context_id or record["id"], 0

    async def on_message_send(self, params: pb.SendMessageRequest, context: ServerCallContext) -> pb.Task:
        """Submits (or resumes) and waits, up to the tool's timeout, for an end or a pause."""
        principal = _principal(context)
        outcome = "error"
        try:
            task_id, _, after_seq = await self._start(params, principal)
            if not params.configuration.return_immediately:
                await follow(self.service, task_id, principal, timeout=await self._tool_timeout(task_id),
                             after_seq=after_seq)
            task = await self._task(task_id, principal)
            outcome = pb.TaskState.Name(task.status.state).removeprefix("TASK_STATE_").lower()
            return task
        except GatewayError as exc:
            raise a2a_error(exc) from None
        finally:
            face_metrics.count(self.service, "a2a", "SendMessage", outcome)

    async def on_message_send_stream(self, params: pb.SendMessageRequest,
                                     context: ServerCallContext) -> AsyncGenerator[Any]:
        """Submits (or resumes), yields the Task, then a status update per hop, FLY chunks, the result."""
        principal = _principal(context)
        try:
            task_id, context_id, after_seq = await self._start(params, principal)
            task = await self._task(task_id, principal)
        except GatewayError as exc:
            face_metrics.count(self.service, "a2a", "SendStreamingMessage", "error")
            raise a2a_error(exc) from None
        face_metrics.count(self.service, "a2a", "SendStreamingMessage", "streaming")
        yield task
        chunks = sum(len(a.parts) for a in task.artifacts if a.artifact_id == at.STREAM_ARTIFACT)
        async for update in self._live(task_id, context_id, principal, after_seq, chunks):
            yield update

    async def _live(self, task_id: str, context_id: str, principal: auth.Principal, after_seq: int,
                    chunks: int) -> AsyncGenerator[Any]:
        """Updates from the events after ``after_seq`` until the task settles or waits for input."""
        mapper = at.StreamMapper(task_id, context_id, chunks)
        try:
            async for event in self.service.stream(task_id, principal, after_seq=after_seq):
                if event.kind == "paused":
                    record = await self.service.get(task_id, principal)
                    if event.envelope_id in at.paused_ids(record):
                        for update in mapper.updates(event):
                            yield update
                        return  # input-required interrupts the stream; the answer opens a new one
                    continue
                for update in mapper.updates(event):
                    yield update
            for update in mapper.final(await self.service.get(task_id, principal)):
                yield update
        except GatewayError as exc:
            raise a2a_error(exc) from None

    # -- tasks -------------------------------------------------------------------------------
    async def on_get_task(self, params: pb.GetTaskRequest, context: ServerCallContext) -> pb.Task | None:
        try:
            return await self._task(params.id, _principal(context))
        except NotFound:
            return None
        except GatewayError as exc:
            raise a2a_error(exc) from None

    async def on_list_tasks(self, params: pb.ListTasksRequest, context: ServerCallContext) -> pb.ListTasksResponse:
        """Tasks of the caller, newest first, filtered by state (and context id)."""
        principal = _principal(context)
        size = min(params.page_size or 50, MAX_LIST_TASKS_PAGE_SIZE)
        status = None
        if params.status:
            status = at.STATUS_OF_STATE.get(params.status)
            if status is None:
                return pb.ListTasksResponse(page_size=size)
        try:
            records, cursor = await self.service.list(principal, status=status, limit=size,
                                                      cursor=params.page_token or None)
            tasks = []
            for record in records:
                if record.get("parent_id"):
                    continue
                task = await self._task(record["id"], principal, params.include_artifacts)
                if params.context_id and task.context_id != params.context_id:
                    continue
                tasks.append(task)
        except GatewayError as exc:
            raise a2a_error(exc) from None
        return pb.ListTasksResponse(tasks=tasks, next_page_token=cursor or "", page_size=size, total_size=len(tasks))

    async def on_cancel_task(self, params: pb.CancelTaskRequest, context: ServerCallContext) -> pb.Task | None:
        principal = _principal(context)
        try:
            await self.service.cancel(params.id, principal)
            return await self._task(params.id, principal)
        except NotFound:
            return None
        except GatewayError as exc:
            raise a2a_error(exc) from None

    async def on_subscribe_to_task(self, params: pb.SubscribeToTaskRequest,
                                   context: ServerCallContext) -> AsyncGenerator[Any]:
        """The Task now, then its live updates (from the store's events, so any replica can serve it)."""
        principal = _principal(context)
        try:
            record, events, context_id = await self._snapshot(params.id, principal)
        except GatewayError as exc:
            raise (TaskNotFoundError() if isinstance(exc, NotFound) else a2a_error(exc)) from None
        task = at.build_task(record, events, context_id)
        if task.status.state in at.TERMINAL:
            state = pb.TaskState.Name(task.status.state)
            raise UnsupportedOperationError(message=f"task {params.id} is already {state}; GetTask reads it")
        yield task
        if task.status.state == pb.TASK_STATE_INPUT_REQUIRED:
            return
        chunks = len(task.artifacts[0].parts) if task.artifacts else 0
        async for update in self._live(params.id, context_id, principal, max((e.seq for e in events), default=0),
                                       chunks):
            yield update

    # -- not offered ---------------------------------------------------------------------------
    async def on_create_task_push_notification_config(self, params: Any, context: ServerCallContext) -> Any:
        raise UnsupportedOperationError(message="push notifications are not offered; stream or poll instead")

    on_get_task_push_notification_config = on_create_task_push_notification_config
    on_list_task_push_notification_configs = on_create_task_push_notification_config
    on_delete_task_push_notification_config = on_create_task_push_notification_config

    async def on_get_extended_agent_card(self, params: Any, context: ServerCallContext) -> Any:
        raise UnsupportedOperationError(message="no extended agent card; the public card lists every skill")


def _skill(params: pb.SendMessageRequest, tools: list[Any]) -> str:
    names = [t.name for t in tools]
    for meta in (params.message.metadata, params.metadata):
        if "skill" in meta:
            return str(meta["skill"])
    if len(names) == 1:
        return names[0]
    raise InvalidParamsError(message=f"name the skill in message metadata 'skill' (one of {', '.join(names)})",
                             data={"code": "unknown_tool"})


def agent_card(tools: list[Any], base_url: str, secured: bool) -> pb.AgentCard:
    """The card: one skill per tool, JSON-RPC at ``/a2a``, streaming, and the bearer API-key scheme."""
    card = pb.AgentCard(
        name="Asya gateway", version="0.1.0",
        description="Asya pipelines as an A2A agent: each skill is a tool of the gateway's tools config.",
        supported_interfaces=[pb.AgentInterface(url=base_url + PATH, protocol_binding="JSONRPC", protocol_version=v)
                              for v in (PROTOCOL_VERSION_CURRENT, PROTOCOL_VERSION_0_3)],
        capabilities=pb.AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"], default_output_modes=["application/json"],
        skills=[pb.AgentSkill(id=t.name, name=t.name, description=t.description or " -> ".join(t.route),
                              tags=["asya", *t.route], input_modes=["application/json"],
                              output_modes=["application/json"]) for t in tools])
    if secured:
        card.security_schemes[SCHEME].CopyFrom(pb.SecurityScheme(http_auth_security_scheme=pb.HTTPAuthSecurityScheme(
            scheme="bearer", description="a gateway API key (python -m asya_gateway.auth)")))
        card.security_requirements.append(pb.SecurityRequirement(schemes={SCHEME: pb.StringList()}))
    return card


def mount(app: Any, service: Any) -> None:
    """Adds the agent card and ``/a2a`` (JSON-RPC; 401 without a valid key) to the gateway app."""
    keys: auth.ApiKeys = app.state.api_keys
    public_url = (app.state.settings.public_url or "").rstrip("/")
    handler = AsyaRequestHandler(service)
    dispatch = create_jsonrpc_routes(handler, PATH, context_builder=PrincipalContextBuilder(keys),
                                     enable_v0_3_compat=True)[0].endpoint  # 0.3 clients: message/send, tasks/get...

    async def rpc(request: Request) -> Response:
        if keys.authenticate(auth.bearer_token(request.headers.get("authorization"))) is None:
            return JSONResponse({"error": {"code": "unauthorized", "message": "send Authorization: Bearer <API key>"}},
                                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="asya-gateway"'})
        return await dispatch(request)

    async def card(request: Request) -> Response:
        base = public_url or str(request.base_url).rstrip("/")
        return JSONResponse(agent_card_to_dict(agent_card(service.tools(), base, not keys.disabled)))

    app.router.routes.append(Route(PATH, rpc, methods=["POST"]))
    app.router.routes.append(Route(AGENT_CARD_WELL_KNOWN_PATH, card, methods=["GET"]))


__all__ = ["AsyaRequestHandler", "agent_card", "mount"]
