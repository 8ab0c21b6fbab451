"""What the MCP and A2A faces share: follow one envelope's events until it ends, pauses or runs out of time.

Both protocols report progress while a call runs, stop at a pause to ask a person for input, and give
up waiting (without canceling anything) when a tool's timeout passes. :func:`follow` does that once,
on top of ``GatewayService.stream``, so both faces see the same events in the same order. Paused time
never counts: :func:`follow` returns at a pause, and the next :func:`follow` after the resume starts a
fresh budget. :func:`summary` turns a final record tree into the one JSON shape both faces return.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

FINAL = ("succeeded", "failed", "canceled", "dead_lettered")

Event = Any  # asya_common.status.model.Event: seq, root_id, envelope_id, kind, actor, data, time
OnEvent = Callable[[Event], Awaitable[None]]


@dataclass
class Outcome:
    """How a :func:`follow` ended.

    ``kind`` is ``final`` (``record`` is the final record tree), ``paused`` (``pause`` holds the
    paused envelope id, prompt and schema) or ``timeout`` (still running; nothing was canceled).
    ``last_seq`` is the last event seen, so the next follow continues without a gap or a repeat.
    """

    kind: str
    last_seq: int
    record: dict[str, Any] | None = None
    pause: dict[str, Any] = field(default_factory=dict)


async def follow(service: Any, envelope_id: str, principal: Any, *, timeout: float, after_seq: int = 0,
                 on_event: OnEvent | None = None) -> Outcome:
    """Reads an envelope's events (backlog, then live) until it is final, paused, or ``timeout`` passes.

    Args:
        service: The ``GatewayService``.
        envelope_id: The root envelope a client submitted.
        principal: Who asks (ownership is checked by the service).
        timeout: Seconds to wait for the next interesting event in total.
        after_seq: Continue after this event (0: from the start).
        on_event: Called for every event in seq order (progress reporting).

    Returns:
        The :class:`Outcome`. A ``paused`` event whose pause was already resumed (seen while replaying
        the backlog) is reported to ``on_event`` but does not stop the follow.
    """
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump() -> None:
        try:
            async for event in service.stream(envelope_id, principal, after_seq=after_seq):
                queue.put_nowait(event)
        except Exception as exc:  # handed to the reader, which raises it in the caller's task
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(done)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    last_seq = after_seq
    task = asyncio.create_task(pump())
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Outcome("timeout", last_seq)
            try:
                item = await asyncio.wait_for(queue.get(), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                return Outcome("timeout", last_seq)
            if item is done:
                return Outcome("final", last_seq, record=await service.get(envelope_id, principal))
            if isinstance(item, Exception):
                raise item
            last_seq = max(last_seq, int(getattr(item, "seq", 0) or 0))
            if on_event is not None:
                await on_event(item)
            if item.kind == "paused" and await _still_paused(service, item.envelope_id, principal):
                data = item.data if isinstance(item.data, dict) else {}
                return Outcome("paused", last_seq, pause={
                    "envelope_id": item.envelope_id, "prompt": data.get("prompt", ""),
                    "schema": data.get("schema"), "actor": item.actor})
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _still_paused(service: Any, envelope_id: str, principal: Any) -> bool:
    try:
        record = await service.get(envelope_id, principal)
    except Exception:
        return False
    return bool(record) and record.get("status") == "paused"


def error_of(record: dict[str, Any]) -> dict[str, str]:
    """``{"type", "message"}`` of a failed (or dead-lettered, canceled) record."""
    error = record.get("error")
    if record.get("status") == "canceled":
        return {"type": "Canceled", "message": f"envelope {record['id']} was canceled"}
    if record.get("status") == "dead_lettered":
        queue = error.get("queue") if isinstance(error, dict) else None
        return {"type": "DeadLettered", "message": f"envelope {record['id']} is in dead-letter queue {queue}"}
    if isinstance(error, dict):
        history = error.get("errors") or error.get("attempts")
        last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
        return {"type": str(error.get("type") or last.get("type") or "Error"),
                "message": str(error.get("message") or last.get("message") or "")}
    return {"type": "Error", "message": "" if error is None else str(error)}


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The JSON both faces return for a record tree: status, result or error, and each fan-out branch once."""
    out: dict[str, Any] = {"envelope_id": record["id"], "status": record["status"]}
    if record["status"] == "succeeded":
        out["result"] = record.get("result")
    elif record["status"] in FINAL:
        out["error"] = error_of(record)
    branches = record.get("branches") or []
    if branches:
        out["branches"] = [summary(branch) for branch in branches]
    return out


def failed(record: dict[str, Any]) -> bool:
    """True when the envelope or any of its branches did not succeed."""
    return record["status"] in FINAL and record["status"] != "succeeded" or any(
        failed(b) for b in record.get("branches") or [])


def progress_message(event: Event) -> str:
    """A one-line description of an event for progress notifications and status updates."""
    import json

    if event.kind == "fly":
        return json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    actor = f" {event.actor}" if event.actor else ""
    if event.kind == "running":
        return f"running{actor}"
    if event.kind == "spawned":
        data = event.data if isinstance(event.data, dict) else {}
        return f"spawned {', '.join(data.get('children') or data.get('ids') or [])}".strip()
    if event.kind == "paused":
        data = event.data if isinstance(event.data, dict) else {}
        return f"paused{actor}: {data.get('prompt', '')}"
    return f"{event.kind}{actor} ({event.envelope_id})"
