"""Turns one handler call into output envelopes (and live ``fly`` data) according to the handler contract.

Payload mode: ``f(payload)``; a value is one output, a list fans out, ``None`` means no output.
Envelope mode: ``f(envelope)``; returns an envelope, a list of them or ``None``; only ``route.next``
may change. Generators (sync or async) yield outputs one by one plus the ops ``("SET", path, value)``
(payload mode; applies to outputs yielded after it), ``("FLY", data)`` (sent at once) and
``("PAUSE", spec)`` (the call's output is parked for a person instead of published; see ``finish``).

Sync handlers run in a worker thread so the event loop keeps serving other calls and ``shutdown``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import inspect
import traceback
from typing import Any, Awaitable, Callable

from asya_common.envelope import H_PAUSE, RouteError, apply_set, check_route_rewrite, copy_envelope, validate

from asya_runtime.loader import LoadedHandler

FlySender = Callable[[Any], Awaitable[None]]
_OWN_MODULES = ("builtins", "__main__", "asya_common", "asya_runtime")


class ResultError(TypeError):
    """The handler produced something that cannot be sent (not JSON-serialisable)."""


def error_info(exc: BaseException) -> dict[str, str]:
    """Describes a processing error for the ``error`` frame: type, message and full traceback.

    The type is the class name for built-in and Asya errors (``ValueError``, ``RouteError``) and
    ``module.Class`` for the user's own exceptions; ``mro`` lists the names of every base class too.
    """
    cls = type(exc)
    return {
        "type": _class_name(cls),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(cls, exc, _user_frames(exc.__traceback__))),
        # every class the exception is an instance of, so the sidecar can match ``nonRetryableErrors`` by base class
        "mro": [_class_name(c) for c in cls.__mro__ if c not in (object, BaseException)],
    }


def _class_name(cls: type) -> str:
    """``ValueError`` for built-in and Asya classes, ``module.Class`` for the user's own."""
    module = cls.__module__ or ""
    return cls.__qualname__ if module.split(".")[0] in _OWN_MODULES else f"{module}.{cls.__qualname__}"


_PLUMBING = ("/asya_runtime/", "/concurrent/futures/", "/asyncio/")


def _user_frames(tb: Any) -> Any:
    """Skips the runtime's own leading frames so a traceback starts in the user's code (if any)."""
    first = tb
    while tb is not None and any(part in tb.tb_frame.f_code.co_filename for part in _PLUMBING):
        tb = tb.tb_next
    return tb or first


class OutputCollector:
    """Accumulates the outputs of one call; applies SET ops to a working copy of the input envelope."""

    def __init__(self, envelope: dict[str, Any], mode: str):
        envelope.get("headers", {}).pop(H_PAUSE, None)  # only this call's PAUSE may park its output
        self.input = envelope
        self.mode = mode
        self.working = copy_envelope({**envelope, "payload": None})  # SET target; payload set per output
        self.outputs: list[dict[str, Any]] = []
        self.pause: dict[str, Any] | None = None  # the spec of a ("PAUSE", {...}) yield

    def argument(self) -> Any:
        """What the handler is called with: the payload, or a copy of the envelope."""
        return self.input["payload"] if self.mode == "payload" else copy_envelope(self.input)

    def on_return(self, result: Any) -> None:
        """Records the return value of a non-generator handler."""
        if result is None:
            return
        items = result if isinstance(result, list) else [result]
        for index, item in enumerate(items):  # the last output takes the working copy itself (no more SETs)
            self._add(item, copy_item=False, last=index == len(items) - 1)

    def on_yield(self, item: Any) -> tuple[str, Any] | None:
        """Records one yielded item; returns ``("FLY", data)`` when it must be streamed now."""
        if isinstance(item, tuple) and item and isinstance(item[0], str):
            op = item[0]
            if op == "FLY":
                if len(item) != 2:
                    raise RouteError(f"FLY takes one value: ('FLY', data), got a tuple of {len(item)}")
                return ("FLY", item[1])
            if op == "SET":
                if self.mode == "envelope":
                    raise RouteError("SET is not available in envelope mode: yield envelopes with route.next rewritten")
                if len(item) != 3 or not isinstance(item[1], str):
                    raise RouteError(f"SET takes a path and a value: ('SET', '.route.next', [...]), got {item!r:.200}")
                apply_set(self.working, item[1], item[2])
                return None
            if op == "PAUSE":
                if len(item) != 2 or not isinstance(item[1], dict):
                    raise RouteError(f"PAUSE takes one dict: ('PAUSE', {{'prompt': ..., 'schema': ...}}), got {item!r:.200}")
                self.pause = item[1]
                return None
            raise RouteError(f"unknown generator op {op!r}: a yielded tuple must start with 'SET', 'FLY' or 'PAUSE'")
        if item is not None:
            self._add(item, copy_item=True)
        return None

    def finish(self) -> list[dict[str, Any]]:
        """The call's outputs; after a PAUSE, the one output to park carries the spec in ``x-asya-pause``.

        A handler that paused without yielding an output parks its input payload (or envelope).
        The sidecar checks the spec and parks the envelope instead of publishing it.
        """
        if self.pause is not None:
            if not self.outputs:
                self._add(self.input["payload"] if self.mode == "payload" else self.input, copy_item=True)
            for output in self.outputs:
                output.setdefault("headers", {})[H_PAUSE] = self.pause
        return self.outputs

    def _add(self, item: Any, copy_item: bool, last: bool = False) -> None:
        if self.mode == "payload":
            output = self.working if last else copy_envelope(self.working)
            output["payload"] = copy.deepcopy(item) if copy_item else item
        else:
            output = validate(copy.deepcopy(item) if copy_item else item)
            check_route_rewrite(self.input, output)
        self.outputs.append(output)


class Invoker:
    """Calls the loaded handler for one envelope at a time (many at once on one loop)."""

    def __init__(self, handler: LoadedHandler, mode: str, executor: concurrent.futures.Executor):
        self.handler = handler
        self.mode = mode
        self.executor = executor

    async def invoke(self, envelope: dict[str, Any], send_fly: FlySender) -> list[dict[str, Any]]:
        """Runs the handler on ``envelope``.

        Args:
            envelope: A validated input envelope (never modified).
            send_fly: Coroutine function that sends one ``fly`` frame and waits until it is written.

        Returns:
            The output envelopes (``route.curr`` unchanged; the sidecar advances them).

        Raises:
            Exception: Whatever the handler raised, or RouteError/EnvelopeError for a broken contract.
        """
        collector = OutputCollector(envelope, self.mode)
        if self.handler.is_async:
            await self._consume(self.handler.function(collector.argument()), collector, send_fly)
            return collector.finish()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        pending = await loop.run_in_executor(
            self.executor, context.run, self._run_sync, collector, send_fly, loop
        )
        if pending is not None:  # a sync callable returned a coroutine / async generator
            await self._consume(pending, collector, send_fly)
        return collector.finish()

    def _run_sync(self, collector: OutputCollector, send_fly: FlySender, loop: asyncio.AbstractEventLoop) -> Any:
        """Worker-thread side: calls the handler and drains a sync generator; returns async leftovers."""
        result = self.handler.function(collector.argument())
        if inspect.iscoroutine(result) or inspect.isasyncgen(result):
            return result
        if inspect.isgenerator(result):
            for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    asyncio.run_coroutine_threadsafe(send_fly(fly[1]), loop).result()
        else:
            collector.on_return(result)
        return None

    async def _consume(self, result: Any, collector: OutputCollector, send_fly: FlySender) -> None:
        """Loop side: awaits a coroutine or drains an async generator into ``collector``."""
        if inspect.isasyncgen(result):
            async for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    await send_fly(fly[1])
            return
        if inspect.isawaitable(result):
            result = await result
        if inspect.isgenerator(result):  # unusual, but keep the contract: drain it
            for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    await send_fly(fly[1])
            return
        collector.on_return(result)
