"""Makes one actor's queues match its Deployment: idempotent, safe to run any number of times.

* Missing queue or DLQ → created through ``Transport.ensure_queue`` (Event ``QueueCreated``).
* Existing queue with other attributes → never touched; reported as Event ``QueueDrift`` and the
  annotation ``asya.sh/queue-drift`` (removed again once the drift is gone).
* ``asya.sh/queue-deletion: delete`` → finalizer ``asya.sh/queue-cleanup``; on deletion the queues are
  deleted, and if the broker stays unreachable for ``cleanup_timeout`` the finalizer is released anyway
  (Event ``QueueCleanupAbandoned``) so a broken broker never wedges a Deployment deletion.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import structlog

from asya_common.transport import Transport
from asya_controller.actor import (A_DRIFT, A_READY, FINALIZER, ActorRef, ActorSpec, ActorSpecError, actor_ref,
                                   parse_actor)
from asya_controller.events import EventRecorder
from asya_controller.kube import MERGE_PATCH, KubeClient, KubeError
from asya_controller.metrics import DRIFTED_ACTORS, QUEUES_CREATED

log = structlog.get_logger()
BROKER_TIMEOUT = 30.0


class RetryLater(Exception):
    """The reconcile could not finish now (broker down, conflict); the key is retried with backoff."""


def _deployment_path(ref: ActorRef) -> str:
    return f"/apis/apps/v1/namespaces/{ref.namespace}/deployments/{ref.name}"


def _parse_time(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


class Reconciler:
    """Reconciles actor Deployments of one transport."""

    def __init__(self, kube: KubeClient, transport: Transport, events: EventRecorder, cleanup_timeout: float):
        self._kube = kube
        self._transport = transport
        self._events = events
        self._cleanup_timeout = cleanup_timeout
        self.actors: dict[ActorRef, ActorSpec] = {}  # actors whose queues exist, for DLQ bookkeeping
        self._invalid: dict[ActorRef, str] = {}
        self._drifted: set[ActorRef] = set()

    async def reconcile(self, deployment: dict[str, Any], deleted: bool) -> None:
        """Brings the queues of ``deployment`` in line with its annotations.

        Raises:
            RetryLater: Something transient failed; call again later.
        """
        ref = actor_ref(deployment)
        if deleted:
            self._forget(ref)
            return
        try:
            spec = parse_actor(deployment)
        except ActorSpecError as exc:
            self._forget(ref)
            if self._invalid.get(ref) != str(exc):
                self._invalid[ref] = str(exc)
                await self._events.record(ref, "InvalidActor", f"queues not managed: {exc}", warning=True,
                                          uid=deployment["metadata"].get("uid"))
            return
        self._invalid.pop(ref, None)
        if spec.transport != self._transport.name:
            log.debug("other_transport_skipped", actor=ref.actor, deployment=str(ref), transport=spec.transport)
            return
        meta = deployment["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                await self._cleanup(spec, deployment)
            self._forget(ref)
            return
        if spec.delete_queues != (FINALIZER in finalizers):
            wanted = finalizers + [FINALIZER] if spec.delete_queues else [f for f in finalizers if f != FINALIZER]
            await self._patch(ref, {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}})
            return  # the patch comes back as a watch event; continue from the new object
        await self._ensure(spec, deployment)

    def _forget(self, ref: ActorRef) -> None:
        self.actors.pop(ref, None)
        self._drifted.discard(ref)
        DRIFTED_ACTORS.set(len(self._drifted))

    async def _broker(self, coro: Any) -> Any:
        """Runs one broker call with a deadline; any failure of it (client libraries raise their own
        connection errors, not only TransportError) means "retry later", never a stuck worker."""
        try:
            return await asyncio.wait_for(coro, BROKER_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see docstring
            raise RetryLater(f"broker: {type(exc).__name__}: {exc}") from exc

    async def _ensure(self, spec: ActorSpec, deployment: dict[str, Any]) -> None:
        ref, meta = spec.ref, deployment["metadata"]
        results = await self._broker(self._transport.ensure_queue(spec.queue))
        created = [r.queue for r in results if r.created]
        if created:
            QUEUES_CREATED.inc(len(created))
            await self._events.record(ref, "QueueCreated", f"created {', '.join(created)} on {spec.transport}",
                                      uid=meta.get("uid"))
        drift = {r.queue: {attr: {"wanted": w, "actual": a} for attr, (w, a) in sorted(r.drift.items())}
                 for r in results if r.drift}
        drift_text = json.dumps(drift, sort_keys=True, separators=(",", ":")) if drift else None
        annotations = meta.get("annotations") or {}
        if drift:
            self._drifted.add(ref)
        else:
            self._drifted.discard(ref)
        DRIFTED_ACTORS.set(len(self._drifted))
        if drift_text and annotations.get(A_DRIFT) != drift_text:
            details = "; ".join(f"{q}: " + ", ".join(f"{a} wanted {v['wanted']!r} but is {v['actual']!r}"
                                                    for a, v in attrs.items()) for q, attrs in drift.items())
            await self._events.record(ref, "QueueDrift", f"queue left unchanged, attributes differ: {details}",
                                      warning=True, uid=meta.get("uid"))
        patch = {}
        if annotations.get(A_DRIFT) != drift_text:
            patch[A_DRIFT] = drift_text
        if annotations.get(A_READY) != "true":
            patch[A_READY] = "true"
        if patch:
            await self._patch(ref, {"metadata": {"annotations": patch}})
        self.actors[ref] = spec
        log.info("reconciled", actor=ref.actor, deployment=str(ref), created=created, drift=bool(drift))

    async def _cleanup(self, spec: ActorSpec, deployment: dict[str, Any]) -> None:
        ref, meta = spec.ref, deployment["metadata"]
        try:
            for queue in (spec.queue.name, spec.dlq):
                await self._broker(self._transport.delete_queue(queue))
        except RetryLater as exc:
            waited = datetime.datetime.now(datetime.timezone.utc).timestamp() - _parse_time(meta["deletionTimestamp"])
            if waited < self._cleanup_timeout:
                raise
            await self._events.record(
                ref, "QueueCleanupAbandoned",
                f"could not delete {spec.queue.name} and {spec.dlq} for {int(waited)}s ({exc}); "
                "releasing the finalizer, delete the queues by hand", warning=True, uid=meta.get("uid"))
        else:
            await self._events.record(ref, "QueueDeleted", f"deleted {spec.queue.name} and {spec.dlq}",
                                      uid=meta.get("uid"))
        remaining = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        await self._patch(ref, {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}})

    async def _patch(self, ref: ActorRef, body: dict[str, Any]) -> None:
        try:
            await self._kube.request("PATCH", _deployment_path(ref), body=body, content_type=MERGE_PATCH)
        except KubeError as exc:
            if exc.status == 404:
                return  # gone already; the watch reports the deletion
            raise RetryLater(f"patch {ref}: {exc}") from exc
