"""The gateway service: the one place that submits, reads, streams, pauses, resumes and cancels.

Every protocol face (REST/SSE here, MCP and A2A in their own modules, the trace page) is a thin
adapter over :class:`GatewayService`, so they all validate, record, publish and authorise the same
way and raise the same :class:`~asya_gateway.errors.GatewayError` subclasses.

The gateway publishes only the envelope a client submits; fan-out children are created and
published by the sidecars, and appear in the record tree through the status store.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from asya_common import envelope as env
from asya_common import status as st
from asya_common.transport import Transport, TransportError

from asya_gateway import errors
from asya_gateway.auth import Principal
from asya_gateway.errors import GatewayError, InvalidArguments, NotFound, PublishError, UnknownTool
from asya_gateway.metrics import GatewayMetrics
from asya_gateway.tools import Tool

Event = st.Event


def _json_path(error: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


class GatewayService:
    """Holds the store, the transport, the event feed and the tools of one gateway process.

    Args:
        store: An open status store (SQLite or PostgreSQL).
        transport: A connected transport (the same kind the sidecars use).
        feed: The process's one :class:`asya_common.status.feed.EventFeed` (started by the app).
        tools: Tools by name.
        queue_prefix: Prefix of every queue name.
        metrics: Counters of this gateway.
        log: Bound structlog logger.
    """

    def __init__(self, store: Any, transport: Transport, feed: Any, tools: dict[str, Tool], *,
                 queue_prefix: str, metrics: GatewayMetrics, log: Any):
        self.store, self.transport, self.feed = store, transport, feed
        self._tools = dict(tools)
        self.queue_prefix = queue_prefix
        self.metrics, self.log = metrics, log

    def attach(self, store: Any, transport: Transport, feed: Any) -> None:
        """Sets the store, transport and feed once the app's lifespan has opened them."""
        self.store, self.transport, self.feed = store, transport, feed

    # -- tools ---------------------------------------------------------------------------
    def tools(self) -> list[Tool]:
        """Every configured tool, by name."""
        return [self._tools[name] for name in sorted(self._tools)]

    def tool(self, name: str) -> Tool:
        """The tool called ``name``.

        Raises:
            UnknownTool: No such tool is configured.
        """
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none configured"
            raise UnknownTool(f"unknown tool {name!r} (known: {known})") from None

    # -- submit --------------------------------------------------------------------------
    async def submit(self, *, tool: str | None = None, arguments: dict | None = None, route: list[str] | None = None,
                     payload: Any = None, principal: Principal, headers: dict | None = None) -> dict[str, Any]:
        """Validates, records (``pending``) and publishes one envelope; returns its record.

        Raises:
            Forbidden: The key lacks ``submit`` (tools) or ``admin`` (a raw route).
            UnknownTool: ``tool`` is not configured.
            InvalidArguments: ``arguments`` break the tool's JSON Schema (nothing recorded or published).
            BadRequest: Neither or both of ``tool`` and ``route``; a bad route or headers.
            PublishError: The broker refused the envelope; its record is marked ``failed``.
        """
        require(principal, "submit")
        if (tool is None) == (route is None):
            raise errors.BadRequest("give either 'tool' (with 'arguments') or 'route' (with 'payload')")
        if headers is not None and (not isinstance(headers, dict)
                                    or any(k.startswith(env.SIDECAR_HEADER_PREFIX) for k in headers)):
            raise errors.BadRequest(f"'headers' must be an object without '{env.SIDECAR_HEADER_PREFIX}*' keys")
        if tool is not None:
            spec = self.tool(tool)
            arguments = {} if arguments is None else arguments
            error = next(iter(sorted(spec.validator().iter_errors(arguments), key=lambda e: list(e.path))), None)
            if error is not None:
                raise InvalidArguments(f"arguments of tool {tool!r} break its schema at {_json_path(error)}: "
                                       f"{error.message}", _json_path(error))
            actors, payload = spec.route, arguments
        else:
            require(principal, "admin", why="a raw route (tools need only 'submit')")
            if not isinstance(route, list):
                raise errors.BadRequest("'route' must be a list of actor names")
            actors = route
        try:
            envelope = env.make_envelope(actors, payload, headers={**(headers or {}),
                                                                   **({"x-asya-tool": tool} if tool else {})})
        except env.RouteError as exc:
            raise errors.BadRequest(f"bad route: {exc}") from None
        envelope_id = envelope["id"]
        log = self.log.bind(envelope_id=envelope_id, actor=actors[0], tool=tool)
        await asyncio.to_thread(self.store.create, envelope, owner=principal.owner)
        try:
            await self.transport.send(env.queue_name(actors[0], self.queue_prefix), env.dumps(envelope))
        except (TransportError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self.store.record_final, envelope, st.FAILED, actor=actors[0],
                                    error={"actor": actors[0], "type": "PublishError", "message": reason,
                                           "attempts": []})
            self.metrics.publish_failures.inc()
            log.error("publish failed; record marked failed", error=reason)
            raise PublishError(f"could not publish envelope {envelope_id} to actor {actors[0]!r}: {reason}",
                               detail={"id": envelope_id}) from None
        self.metrics.submitted.labels(tool=tool or "").inc()
        log.info("submitted")
        return {"id": envelope_id, "status": st.PENDING, "route": actors, "tool": tool}

    # -- read ----------------------------------------------------------------------------
    async def _visible(self, envelope_id: str, principal: Principal) -> dict[str, Any]:
        require(principal, "read")
        record = await asyncio.to_thread(self.store.get, envelope_id)
        if record is not None and not principal.is_admin:
            root_id = record.get("root_id") or envelope_id
            root = record if root_id == envelope_id else await asyncio.to_thread(self.store.get, root_id)
            if root is None or root.get("owner") != principal.owner:
                record = None
        if record is None:
            raise NotFound(f"no envelope with id {envelope_id!r}")
        return record

    async def get(self, envelope_id: str, principal: Principal) -> dict[str, Any]:
        """The record tree of ``envelope_id`` (fan-out children under ``branches``).

        Raises:
            NotFound: No such envelope, or another key's.
        """
        await self._visible(envelope_id, principal)
        tree = await asyncio.to_thread(self.store.tree, envelope_id)
        if tree is None:
            raise NotFound(f"no envelope with id {envelope_id!r}")
        return tree

    async def list(self, principal: Principal, *, status: str | None = None, actor: str | None = None,
                   since: float | None = None, limit: int = 50, cursor: str | None = None
                   ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of records, newest first; non-admin keys see only their own."""
        require(principal, "read")
        if status is not None and status not in st.STATUSES:
            raise errors.BadRequest(f"status must be one of {', '.join(st.STATUSES)}, got {status!r}")
        if not 1 <= limit <= 500:
            raise errors.BadRequest("limit must be between 1 and 500")
        owner = None if principal.is_admin else principal.owner
        try:
            return await asyncio.to_thread(self.store.list_records, status=status, actor=actor, since=since,
                                           owner=owner, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise errors.BadRequest(f"bad cursor or filter: {exc}") from None

    # -- stream --------------------------------------------------------------------------
    async def _settled(self, envelope_id: str) -> bool:
        tree = await asyncio.to_thread(self.store.tree, envelope_id)
        return tree is not None and st.is_settled(tree)

    async def stream(self, envelope_id: str, principal: Principal, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """Events of the envelope's root after ``after_seq``, in order, ending after the final one.

        Raises:
            NotFound: No such envelope, or another key's (on the first iteration; use
                :meth:`open_stream` to learn it before sending anything).
        """
        async for event in await self.open_stream(envelope_id, principal, after_seq=after_seq):
            yield event

    async def open_stream(self, envelope_id: str, principal: Principal, *, after_seq: int = 0
                          ) -> AsyncIterator[Event]:
        """Checks access now, then returns the iterator of :meth:`stream`.

        Raises:
            NotFound: No such envelope, or another key's.
        """
        record = await self._visible(envelope_id, principal)
        root_id = record.get("root_id") or envelope_id
        return self._events(root_id, after_seq)

    async def _events(self, root_id: str, after_seq: int) -> AsyncIterator[Event]:
        if await self._settled(root_id):
            for event in await asyncio.to_thread(self.store.events, root_id, after_seq, 100_000):
                yield event
            return
        async for event in self.feed.subscribe(root_id, after_seq):
            yield event
            if event.kind in st.FINAL and await self._settled(root_id):
                return

    async def wait_final(self, envelope_id: str, principal: Principal, timeout: float) -> dict[str, Any] | None:
        """The settled record tree, or None after ``timeout`` seconds (time spent paused not counted)."""
        events = await self.open_stream(envelope_id, principal)
        budget, paused = timeout, set()
        iterator = events.__aiter__()
        pump: asyncio.Task | None = None
        try:
            while True:
                started = time.monotonic()
                pump = pump or asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({pump}, timeout=None if paused else max(budget, 0))
                if not paused:
                    budget -= time.monotonic() - started
                if not done:
                    return None
                try:
                    event = pump.result()
                except StopAsyncIteration:
                    return await self.get(envelope_id, principal)
                pump = None
                if event.kind == st.PAUSED:
                    paused.add(event.envelope_id)
                elif event.kind in (st.RESUMED, *st.FINAL):
                    paused.discard(event.envelope_id)
        finally:
            if pump is not None:  # let the cancelled step finish before closing the generator
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            await iterator.aclose()

    # -- pause / resume / cancel ---------------------------------------------------------
    async def resume(self, envelope_id: str, input: Any, principal: Principal) -> dict[str, Any]:
        """Resumes a paused envelope with ``input`` (validated against the pause's schema).

        Raises:
            PauseNotFound: Not paused (or another key's). PauseConflict: already resumed.
            PauseInputInvalid: ``input`` breaks the schema; the envelope stays paused.
        """
        require(principal, "resume")
        try:
            await self._visible(envelope_id, _reader(principal))
        except NotFound:
            raise errors.PauseNotFound(f"envelope {envelope_id!r} is not paused") from None
        from asya_common.status.pause import resume_paused

        try:
            await resume_paused(self.store, self.transport, envelope_id, input, queue_prefix=self.queue_prefix)
        except st.PauseNotFound:
            raise errors.PauseNotFound(f"envelope {envelope_id!r} is not paused") from None
        except st.PauseConflict:
            raise errors.PauseConflict(f"envelope {envelope_id!r} was already resumed") from None
        except st.PauseInputInvalid as exc:
            raise errors.PauseInputInvalid(f"input breaks the pause's schema: {exc}",
                                           getattr(exc, "path", "$")) from None
        except TransportError as exc:
            raise PublishError(f"could not publish the resumed envelope {envelope_id}: {exc}") from None
        self.metrics.resumed.inc()
        self.log.info("resumed", envelope_id=envelope_id)
        return await self.get(envelope_id, _reader(principal))

    async def cancel(self, envelope_id: str, principal: Principal) -> dict[str, Any]:
        """Cancels an envelope that is not final yet; its record becomes ``canceled``.

        Raises:
            NotFound: No such envelope (or another key's). Conflict: it is already final.
        """
        require(principal, "submit")
        await self._visible(envelope_id, _reader(principal))
        if not await asyncio.to_thread(self.store.cancel, envelope_id):
            raise errors.Conflict(f"envelope {envelope_id!r} is already final and cannot be canceled")
        self.log.info("canceled", envelope_id=envelope_id)
        return await self.get(envelope_id, _reader(principal))


def require(principal: Principal, scope: str, why: str = "") -> None:
    """Raises Forbidden unless ``principal`` holds ``scope``."""
    if not principal.allows(scope):
        raise errors.Forbidden(f"API key {principal.key_id!r} lacks scope {scope!r}" + (f" needed for {why}" if why
                                                                                       else ""))


def _reader(principal: Principal) -> Principal:
    """The same caller with ``read`` (resuming or cancelling your own envelope implies seeing it)."""
    return Principal(principal.key_id, principal.scopes | {"read"})


__all__ = ["GatewayError", "GatewayService", "Event"]
