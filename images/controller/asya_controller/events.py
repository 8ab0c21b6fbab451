"""Kubernetes Events on actor Deployments: how the controller tells a human what it did or could not do.

``kubectl describe deployment <actor>`` then shows queue creation, drift, DLQ growth and cleanup
problems next to the Deployment's own events.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import structlog

from asya_controller.actor import ActorRef
from asya_controller.kube import KubeClient, KubeError

log = structlog.get_logger()
COMPONENT = "asya-controller"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Creates core/v1 Events; a failure to record is logged, never raised (events are best effort)."""

    def __init__(self, kube: KubeClient, instance: str):
        self._kube = kube
        self._instance = instance

    async def record(self, ref: ActorRef, reason: str, message: str, *, warning: bool = False,
                     uid: str | None = None) -> None:
        """Records one Event about the Deployment ``ref``.

        Args:
            ref: The actor Deployment.
            reason: Short CamelCase reason (``QueueCreated``, ``QueueDrift``...).
            message: Human-readable detail.
            warning: Type ``Warning`` instead of ``Normal``.
            uid: The Deployment's uid, when known.
        """
        now = _now()
        involved: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ref.namespace,
                                    "name": ref.name}
        if uid:
            involved["uid"] = uid
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.name}.{uuid.uuid4().hex[:12]}", "namespace": ref.namespace},
            "involvedObject": involved, "reason": reason, "message": message[:1000],
            "type": "Warning" if warning else "Normal", "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "reportingInstance": self._instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await self._kube.request("POST", f"/api/v1/namespaces/{ref.namespace}/events", body=body)
        except (KubeError, OSError) as exc:
            log.warning("event_not_recorded", actor=ref.actor, deployment=str(ref), reason=reason, error=str(exc))
        log.info("event", actor=ref.actor, deployment=str(ref), reason=reason, message=message, warning=warning)

    async def list_for(self, ref: ActorRef) -> list[dict[str, Any]]:
        """Events about ``ref`` (used by tests and the CLI)."""
        data = await self._kube.request(
            "GET", f"/api/v1/namespaces/{ref.namespace}/events",
            query={"fieldSelector": f"involvedObject.name={ref.name},involvedObject.kind=Deployment"})
        return data.get("items", [])
