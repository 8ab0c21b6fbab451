"""Handler calls through the runtime: ``concurrency`` at once, each within ``actorTimeout`` from its start.

The runtime runs calls in the order they arrive, ``concurrency`` at a time, and keeps the rest
waiting in that order. So when its ``pong`` says it runs as many calls at once as this sidecar
(``ASYA_CONCURRENCY`` on both containers), every held message is sent to it as soon as it is parsed:
when a handler finishes, the next call is already there, and a burst of calls and answers shares
system calls and wake-ups. The handler still runs one call at a time at concurrency 1, in arrival
order, so nothing changes for a handler that is not thread-safe.

The sidecar mirrors the runtime's slots with a FIFO semaphore taken in the order calls are sent, so
a call's ``actorTimeout`` and its ``running`` event start when a handler is free for it, never while
it waits behind others (a FLY chunk that arrives first also counts as the start). A call that was
still waiting when the runtime was restarted (another call's timeout) or crashed never started: it is
sent again to the new runtime instead of being returned to the queue or charged an attempt (the
third time, it is treated as if it had run, so a message that crashes the runtime is still charged).
When the runtime does not say its concurrency, or says another one, a call is sent only once a slot
is free, as before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asya_common.transport import ReceivedMessage
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.prefetch import HeldLimit
from asya_sidecar.runtime_client import RuntimeClient, RuntimeCrashed, RuntimeRestarted
from asya_sidecar.settings import SidecarSettings
from asya_sidecar.tracing import NoTracer, hop_data

_SENDS = 3  # a call lost this often while waiting in the runtime is then treated as if it had run


class CallEvents:
    """The ``running`` event (once, when the call starts) and the FLY chunks of one call."""

    __slots__ = ("_progress", "_metrics", "_envelope", "_actor", "_started")

    def __init__(self, progress: Any, metrics: SidecarMetrics, envelope: dict[str, Any], actor: str):
        self._progress, self._metrics, self._envelope, self._actor = progress, metrics, envelope, actor
        self._started = False

    def start(self) -> None:
        """Queues ``running`` unless already done (a handler is free for the call, or it streamed first)."""
        if not self._started:
            self._started = True
            if self._progress is not None:
                self._progress.running(self._envelope["id"], self._actor, hop_data(self._envelope))

    def fly(self, data: Any) -> None:
        """One FLY chunk: counted and queued for the status store (runs in the frame parser: never waits)."""
        self.start()
        self._metrics.fly_chunks.inc()
        queue_fly = getattr(self._progress, "fly", None)
        if queue_fly is not None:
            queue_fly(self._envelope["id"], self._actor, data)


class HandlerCalls:
    """Calls the handler for the processor; owns the handler slots, ``actorTimeout`` and runtime restarts.

    Args:
        settings: Sidecar settings (``concurrency``, ``prefetch``, ``actor_timeout``, ``actor``).
        runtime: The runtime client.
        metrics: Metrics to update.
        log: Bound structlog logger.
        progress: Optional progress reporter (``running`` and ``fly``).
        tracer: Span hooks.
    """

    def __init__(self, settings: SidecarSettings, runtime: RuntimeClient, metrics: SidecarMetrics, log: Any,
                 progress: Any = None, tracer: NoTracer | None = None):
        self._settings, self._runtime, self._metrics, self._log = settings, runtime, metrics, log
        self._progress, self._tracer = progress, tracer or NoTracer()
        self._slots = asyncio.Semaphore(settings.concurrency)  # taken in the order calls reach the runtime
        self.held = HeldLimit(settings.concurrency, settings.prefetch)  # fed with every call's duration
        self._checked_generation = 0

    async def call(self, message: ReceivedMessage, envelope: dict[str, Any], attempt: int,
                   log: Any) -> dict[str, Any] | None:
        """Runs one handler call: its ``result`` or ``error`` frame (``ActorTimeout``, ``RuntimeCrashed``
        included), or None when the call is not the handler's failure and the message goes back to the queue.

        Raises:
            RuntimeUnavailable: No runtime came up within the connect timeout (the message is returned).
        """
        events = CallEvents(self._progress, self._metrics, envelope, self._settings.actor)
        on_fly = self._tracer.counting_fly(events.fly)
        for sends_left in reversed(range(_SENDS)):
            queued = await self._connect()
            holding = False
            answer: asyncio.Future | None = None
            try:
                if not queued:  # the runtime may not queue: send only into a free slot
                    await self._slots.acquire()
                    holding = True
                    await self._connect()  # the runtime may have been restarted while this call waited
                generation = self._runtime.generation
                try:
                    # unchanged since it was parsed unless the hop span set headers.traceparent: then serialised again
                    body = None if self._tracer.enabled else message.body
                    answer = self._runtime.start_call(envelope, on_fly, body)
                except RuntimeRestarted:
                    return None
                if queued:
                    await self._slots.acquire()
                    holding = True
                    if sends_left and _lost_while_waiting(answer):  # it never ran: send it to the new runtime
                        continue
                events.start()
                return await self._timed(answer, generation, attempt, log)
            finally:
                if holding:
                    self._slots.release()
                if answer is not None and not answer.done():  # cancelled (shutdown) before it was awaited
                    answer.cancel()
        return None

    async def _connect(self) -> bool:
        """Waits for the runtime outside ``actorTimeout``; True when calls may wait in it (same concurrency).

        Raises:
            RuntimeUnavailable: No runtime came up within the connect timeout (the message is returned, uncharged).
        """
        await self._runtime.connect()
        runtime_concurrency = self._runtime.runtime_concurrency
        if self._checked_generation != self._runtime.generation:  # a new connection: say once if they differ
            self._checked_generation = self._runtime.generation
            if runtime_concurrency not in (None, self._settings.concurrency):
                self._log.warning("the runtime runs a different number of calls at once; set the same "
                                  "ASYA_CONCURRENCY on both containers", runtime_concurrency=runtime_concurrency,
                                  concurrency=self._settings.concurrency)
        return runtime_concurrency == self._settings.concurrency

    async def _timed(self, answer: asyncio.Future, generation: int, attempt: int, log: Any) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.actor_timeout):
                return await (self._tracer.call(answer) if self._tracer.enabled else answer)
        except TimeoutError:
            self._metrics.restart("timeout")
            self._tracer.event("actorTimeout", timeout=float(self._settings.actor_timeout), attempt=attempt)
            log.error("handler exceeded actorTimeout; restarting runtime", timeout=self._settings.actor_timeout,
                      attempt=attempt)
            await self._runtime.restart(generation)
            return {"type": "error", "error": {
                "type": "ActorTimeout",
                "message": f"handler did not finish within actorTimeout={self._settings.actor_timeout:g}s",
                "traceback": ""}}
        except RuntimeRestarted:  # a sibling call timed out while this one ran: not this handler's failure
            return None
        except RuntimeCrashed as exc:
            return {"type": "error", "error": {"type": "RuntimeCrashed", "message": str(exc), "traceback": ""}}
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.handler_seconds.observe(elapsed)
            self.held.observe(elapsed)


def _lost_while_waiting(answer: asyncio.Future) -> bool:
    """The runtime was restarted or crashed while this call waited in it for a handler."""
    return answer.done() and not answer.cancelled() and isinstance(answer.exception(), (RuntimeRestarted,
                                                                                       RuntimeCrashed))
