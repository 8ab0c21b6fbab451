"""Turns one handler call into output envelopes (and live ``fly`` data) according to the handler contract.

Payload mode: ``f(payload)``; a value is one output, a list fans out, ``None`` means no output.
Envelope mode: ``f(envelope)``; returns an envelope, a list of them or ``None``; only ``route.next``
may change. Generators (sync or async) yield outputs one by one plus the ops ``("SET", path, value)``
(payload mode; applies to outputs yielded after it), ``("FLY", data)`` (sent at once) and
``("PAUSE", spec)`` (the call's output is parked for a person instead of published; see ``finish``).

Sync handlers run on one of the runtime's handler threads (``asya_runtime.calls``), so the connection's
reader thread keeps serving other calls, ``ping`` and ``shutdown``; async handlers run on its event loop
thread. ``send_fly`` is a plain function on both: it writes the ``fly`` frame before it returns.
"""

from __future__ import annotations

import copy
import inspect
import traceback
from typing import Any, Callable, Coroutine

from asya_common.envelope import H_PAUSE, RouteError, apply_set, check_route_rewrite, copy_envelope, validate

from asya_runtime.loader import LoadedHandler

FlySender = Callable[[Any], None]
LoopRunner = Callable[[Coroutine[Any, Any, None]], None]  # runs a coroutine on the event loop thread, waits
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
    """Accumulates the outputs of one call; applies SET ops to a working copy of the input envelope.

    The input envelope is the collector's own (parsed from this call's frame, never used after it):
    the last output of a handler that returned may share its route and headers.
    """

    def __init__(self, envelope: dict[str, Any], mode: str):
        envelope.get("headers", {}).pop(H_PAUSE, None)  # only this call's PAUSE may park its output
        self.input = envelope
        self.mode = mode
        self._working: dict[str, Any] | None = None
        self.outputs: list[dict[str, Any]] = []
        self.pause: dict[str, Any] | None = None  # the spec of a ("PAUSE", {...}) yield

    @property
    def working(self) -> dict[str, Any]:
        """The SET target: a copy of the input envelope (made when first needed); payload set per output."""
        if self._working is None:
            self._working = copy_envelope({**self.input, "payload": None})
        return self._working

    def argument(self) -> Any:
        """What the handler is called with: the payload, or a copy of the envelope."""
        return self.input["payload"] if self.mode == "payload" else copy_envelope(self.input)

    def on_return(self, result: Any) -> None:
        """Records the return value of a non-generator handler."""
        if result is None:
            return
        items = result if isinstance(result, list) else [result]
        last = len(items) - 1
        for index, item in enumerate(items):  # the last output takes the working copy itself (no more SETs)
            if index == last and self.mode == "payload" and self._working is None:
                # No SET ran, and the input envelope is not used after the call: the last output may
                # take its route and headers as they are instead of a copy.
                self.outputs.append({**self.input, "payload": item})
            else:
                self._add(item, copy_item=False, last=index == last)

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
    """Calls the loaded handler for one envelope (from many threads at once, or on the event loop)."""

    def __init__(self, handler: LoadedHandler, mode: str):
        self.handler = handler
        self.mode = mode

    def invoke_sync(self, envelope: dict[str, Any], send_fly: FlySender, run_on_loop: LoopRunner) -> list[dict[str, Any]]:
        """Runs a sync handler on ``envelope`` in the calling (handler) thread.

        Args:
            envelope: A validated input envelope (its ``x-asya-pause`` header is dropped; nothing else changes).
            send_fly: Sends one ``fly`` frame and returns once it is written.
            run_on_loop: Runs a coroutine on the event loop and waits for it (for a sync callable that
                returned a coroutine or an async generator).

        Returns:
            The output envelopes (``route.curr`` unchanged; the sidecar advances them).

        Raises:
            BaseException: Whatever the handler raised, or RouteError/EnvelopeError for a broken contract.
        """
        collector = OutputCollector(envelope, self.mode)
        result = self.handler.function(collector.argument())
        if inspect.iscoroutine(result) or inspect.isasyncgen(result):
            run_on_loop(self._consume(result, collector, send_fly))
        elif inspect.isgenerator(result):
            for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    send_fly(fly[1])
        else:
            collector.on_return(result)
        return collector.finish()

    async def invoke_async(self, envelope: dict[str, Any], send_fly: FlySender) -> list[dict[str, Any]]:
        """Runs an async handler (coroutine or async generator) on ``envelope`` on the event loop thread.

        Same arguments, result and errors as :meth:`invoke_sync`.
        """
        collector = OutputCollector(envelope, self.mode)
        await self._consume(self.handler.function(collector.argument()), collector, send_fly)
        return collector.finish()

    async def _consume(self, result: Any, collector: OutputCollector, send_fly: FlySender) -> None:
        """Loop side: awaits a coroutine or drains an async generator into ``collector``."""
        if inspect.isasyncgen(result):
            async for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    send_fly(fly[1])
            return
        if inspect.isawaitable(result):
            result = await result
        if inspect.isgenerator(result):  # unusual, but keep the contract: drain it
            for item in result:
                fly = collector.on_yield(item)
                if fly is not None:
                    send_fly(fly[1])
            return
        collector.on_return(result)
