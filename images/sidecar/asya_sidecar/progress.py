"""Progress reporting into the status store, used by ``asya dev`` (``ASYA_STATUS_DB``).

In production the gateway receives progress instead; the sidecar only needs the small
:class:`~asya_sidecar.processor.ProgressReporter` protocol.
"""

from __future__ import annotations

import asyncio

from asya_common.status_store import StatusStore


class StatusStoreProgress:
    """Marks envelopes ``running`` and registers fan-out children in a SQLite status store."""

    def __init__(self, path: str):
        self._store = StatusStore(path)
        self._lock = asyncio.Lock()

    async def running(self, envelope_id: str, actor: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._store.mark_running, envelope_id, actor)

    async def spawned(self, parent_id: str, child_ids: list[str], actor: str) -> None:
        async with self._lock:
            for child in child_ids:
                await asyncio.to_thread(self._store.mark_pending, child, actor, parent_id)

    def close(self) -> None:
        self._store.close()
