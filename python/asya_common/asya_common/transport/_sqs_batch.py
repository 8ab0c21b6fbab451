"""Coalesces concurrent SQS acks into ``DeleteMessageBatch`` calls.

A sidecar with concurrency N acks up to N messages at about the same time. Each ``ack`` still
returns only after SQS confirmed its own delete (nothing is buffered past the caller), but acks that
arrive while a batch call is in flight, or in the same event-loop turn, share the next call: no
added latency at concurrency 1, up to 10x fewer calls under load.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

BATCH_LIMIT = 10


class DeleteBatcher:
    """Per-queue-URL queue of pending deletes, flushed by one task at a time."""

    def __init__(self, delete_batch: Callable[[str, list[dict[str, str]]], Awaitable[dict[str, Any]]],
                 error_for: Callable[[dict[str, Any]], Exception]):
        self._delete_batch = delete_batch
        self._error_for = error_for
        self._pending: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self._flushing: set[str] = set()

    async def delete(self, url: str, receipt_handle: str) -> None:
        """Deletes one message; raises what ``error_for`` makes of a failed entry."""
        future = asyncio.get_running_loop().create_future()
        self._pending.setdefault(url, []).append((receipt_handle, future))
        if url not in self._flushing:
            self._flushing.add(url)
            asyncio.get_running_loop().create_task(self._flush(url))
        await future

    async def _flush(self, url: str) -> None:
        try:
            await asyncio.sleep(0)  # let acks of the same loop turn join
            while self._pending.get(url):
                batch, self._pending[url] = self._pending[url][:BATCH_LIMIT], self._pending[url][BATCH_LIMIT:]
                entries = [{"Id": str(i), "ReceiptHandle": handle} for i, (handle, _) in enumerate(batch)]
                try:
                    response = await self._delete_batch(url, entries)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting ack
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                failed = {f["Id"]: f for f in response.get("Failed", [])}
                for i, (_, future) in enumerate(batch):
                    if future.done():
                        continue
                    if str(i) in failed:
                        future.set_exception(self._error_for(failed[str(i)]))
                    else:
                        future.set_result(None)
        finally:
            self._flushing.discard(url)
