"""List-then-watch of actor Deployments, feeding a keyed work queue (a minimal client-go informer).

Level-triggered: every event only says "look at this Deployment again"; the reconciler reads the
latest cached object. The watch asks for bookmarks (so a reconnect resumes from a fresh
resourceVersion), re-lists on 410 Gone, reconnects with capped exponential backoff when the API
server goes away, and re-lists everything every ``resync`` seconds so that state changed outside
Kubernetes (a queue deleted by hand) is repaired within one period.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import structlog

from asya_controller.actor import ACTOR_LABEL
from asya_controller.kube import KubeClient, KubeError
from asya_controller.metrics import KNOWN_ACTORS, RELISTS, WATCH_RESTARTS

log = structlog.get_logger()
Key = tuple[str, str]
WATCH_SECONDS = 300


def key_of(obj: dict[str, Any]) -> Key:
    """(namespace, name) of an object."""
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


class WorkQueue:
    """Keys waiting to be reconciled; a key queued twice is processed once with the latest object."""

    def __init__(self) -> None:
        self.store: dict[Key, dict[str, Any]] = {}
        self.tombstones: dict[Key, dict[str, Any]] = {}
        self._queued: set[Key] = set()
        self._queue: asyncio.Queue[Key] = asyncio.Queue()

    def upsert(self, obj: dict[str, Any]) -> None:
        """Caches ``obj`` and queues its key."""
        key = key_of(obj)
        self.store[key] = obj
        self.tombstones.pop(key, None)
        self.add(key)

    def delete(self, obj: dict[str, Any]) -> None:
        """Forgets ``obj`` and queues its key so the reconciler sees the deletion."""
        key = key_of(obj)
        self.store.pop(key, None)
        self.tombstones[key] = obj
        self.add(key)

    def add(self, key: Key) -> None:
        """Queues ``key`` unless it is already waiting."""
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
        KNOWN_ACTORS.set(len(self.store))

    def add_after(self, key: Key, delay: float) -> None:
        """Queues ``key`` again after ``delay`` seconds (retry of a failed reconcile)."""
        asyncio.get_running_loop().call_later(delay, self.add, key)

    async def get(self) -> tuple[Key, dict[str, Any], bool]:
        """Waits for the next key; returns it with its latest object and whether it was deleted."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if key in self.store:
                return key, self.store[key], False
            if key in self.tombstones:
                return key, self.tombstones.pop(key), True


class Backoff:
    """Capped exponential backoff with jitter."""

    def __init__(self, first: float = 0.5, cap: float = 10.0):
        self.first, self.cap, self.current = first, cap, first

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        delay = self.current
        self.current = min(self.cap, self.current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        """Back to the first delay after a success."""
        self.current = self.first


class DeploymentWatcher:
    """Keeps :class:`WorkQueue` in sync with the actor Deployments of some namespaces (or all)."""

    def __init__(self, kube: KubeClient, queue: WorkQueue, namespaces: tuple[str, ...], resync: float,
                 resume_from: str | None = None):
        """Args:
            kube: API client.
            queue: Where Deployments are cached and queued.
            namespaces: Namespaces to watch; empty = all.
            resync: Seconds between full re-lists.
            resume_from: Start by watching from this resourceVersion instead of listing (a resumed
                informer); a version that is too old is answered with 410 Gone and re-listed.
        """
        self._kube = kube
        self._queue = queue
        self._namespaces = namespaces
        self._resync = resync
        self._resume_from = resume_from
        self.synced = asyncio.Event()
        self.relist_causes: list[str] = []

    async def run(self) -> None:
        """Watches every configured scope until cancelled."""
        scopes = ([f"/apis/apps/v1/namespaces/{ns}/deployments" for ns in self._namespaces]
                  or ["/apis/apps/v1/deployments"])
        synced = [asyncio.Event() for _ in scopes]

        async def all_synced() -> None:
            for event in synced:
                await event.wait()
            self.synced.set()

        scope_loops = (self._run_scope(path, done) for path, done in zip(scopes, synced, strict=True))
        await asyncio.gather(all_synced(), *scope_loops)

    async def _run_scope(self, path: str, synced: asyncio.Event) -> None:
        backoff = Backoff()
        version: str | None = self._resume_from
        cause = "start"
        resync_at = time.monotonic() + self._resync
        while True:
            try:
                if version is None:
                    version = await self._list(path, cause)
                    resync_at = time.monotonic() + self._resync
                    synced.set()
                version = await self._watch(path, version, resync_at)
                backoff.reset()
                if time.monotonic() >= resync_at:
                    version, cause = None, "resync"
            except KubeError as exc:
                if exc.status == 410:
                    log.info("watch_expired_relisting", scope=path, error=str(exc))
                    WATCH_RESTARTS.labels("gone").inc()
                    version, cause = None, "gone"
                    continue
                await self._pause(backoff, path, exc, "api_error")
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
                await self._pause(backoff, path, exc, "connection")

    async def _pause(self, backoff: Backoff, path: str, exc: Exception, cause: str) -> None:
        delay = backoff.next()
        WATCH_RESTARTS.labels(cause).inc()
        log.warning("watch_failed_retrying", scope=path, error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 2))
        await asyncio.sleep(delay)

    async def _list(self, path: str, cause: str) -> str:
        """Lists all actor Deployments of the scope, queues every one, drops vanished ones."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._kube.request("GET", path, query={"labelSelector": ACTOR_LABEL, "limit": 500,
                                                                 "continue": token})
            for item in page.get("items", []):
                item.setdefault("apiVersion", "apps/v1")
                item.setdefault("kind", "Deployment")
                items.append(item)
            token = page.get("metadata", {}).get("continue")
            if not token:
                version = page["metadata"]["resourceVersion"]
                break
        self.relist_causes.append(cause)
        RELISTS.labels(cause).inc()
        seen = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
        namespace = path.split("/namespaces/")[1].split("/")[0] if "/namespaces/" in path else None
        for key, obj in list(self._queue.store.items()):
            if key not in seen and (namespace is None or key[0] == namespace):
                self._queue.delete(obj)
        for item in items:
            self._queue.upsert(item)
        log.info("listed", scope=path, actors=len(items), cause=cause, resource_version=version)
        return version

    async def _watch(self, path: str, version: str, resync_at: float) -> str:
        """Follows the watch from ``version`` until the server ends it or a resync is due."""
        seconds = max(1, min(WATCH_SECONDS, int(resync_at - time.monotonic()) + 1))
        query = {"labelSelector": ACTOR_LABEL, "resourceVersion": version, "allowWatchBookmarks": True,
                 "timeoutSeconds": seconds}
        async for event in self._kube.watch(path, query, timeout=seconds + 30):
            obj = event["object"]
            version = obj.get("metadata", {}).get("resourceVersion") or version
            kind = event["type"]
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._queue.delete(obj)
            else:
                self._queue.upsert(obj)
        return version
