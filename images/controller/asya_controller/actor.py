"""Reads an actor Deployment's labels and annotations into what its queues should look like.

The contract is "Actor Deployment metadata" in docs/configuration.md: the ``asya-actor`` chart writes
these annotations and the controller acts on them; nothing else about the Deployment matters here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asya_common.transport import QueueSpec

ACTOR_LABEL = "asya.sh/actor"
A_TRANSPORT = "asya.sh/transport"
A_QUEUE = "asya.sh/queue"
A_DLQ = "asya.sh/dlq"
A_MAX_RECEIVE = "asya.sh/dlq-max-receive-count"
A_LEASE = "asya.sh/lease-seconds"
A_DELETION = "asya.sh/queue-deletion"
A_DRIFT = "asya.sh/queue-drift"
A_READY = "asya.sh/queue-ready"
FINALIZER = "asya.sh/queue-cleanup"
DELETION_POLICIES = ("keep", "delete")


class ActorSpecError(ValueError):
    """An actor Deployment's annotations are missing or malformed; the message names the annotation."""


@dataclass(frozen=True)
class ActorRef:
    """Identifies one actor Deployment."""

    namespace: str
    name: str
    actor: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ActorSpec:
    """What the controller must keep for one actor."""

    ref: ActorRef
    transport: str
    queue: QueueSpec
    delete_queues: bool

    @property
    def dlq(self) -> str:
        """Name of the actor's dead-letter queue."""
        assert self.queue.dlq_name is not None
        return self.queue.dlq_name


def actor_ref(deployment: dict[str, Any]) -> ActorRef:
    """The reference of a Deployment carrying the ``asya.sh/actor`` label."""
    meta = deployment["metadata"]
    return ActorRef(meta["namespace"], meta["name"], (meta.get("labels") or {}).get(ACTOR_LABEL, ""))


def _positive(annotations: dict[str, str], key: str, default: str, cast: type) -> Any:
    raw = annotations.get(key, default)
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise ActorSpecError(f"annotation {key}={raw!r} is not a number") from None
    if value <= 0:
        raise ActorSpecError(f"annotation {key}={raw!r} must be positive")
    return value


def parse_actor(deployment: dict[str, Any]) -> ActorSpec:
    """Builds the :class:`ActorSpec` of an actor Deployment.

    Raises:
        ActorSpecError: A required annotation is missing or a value does not parse.
    """
    ref = actor_ref(deployment)
    if not ref.actor:
        raise ActorSpecError(f"label {ACTOR_LABEL} is empty")
    annotations = deployment["metadata"].get("annotations") or {}
    missing = [key for key in (A_TRANSPORT, A_QUEUE, A_DLQ) if not annotations.get(key)]
    if missing:
        raise ActorSpecError(f"missing annotation(s) {', '.join(missing)}")
    deletion = annotations.get(A_DELETION, "keep")
    if deletion not in DELETION_POLICIES:
        raise ActorSpecError(f"annotation {A_DELETION}={deletion!r} must be one of {', '.join(DELETION_POLICIES)}")
    queue = QueueSpec(
        name=annotations[A_QUEUE],
        dlq_name=annotations[A_DLQ],
        max_receive_count=_positive(annotations, A_MAX_RECEIVE, "10", int),
        lease_seconds=_positive(annotations, A_LEASE, "30", float),
    )
    if queue.name == queue.dlq_name:
        raise ActorSpecError(f"annotations {A_QUEUE} and {A_DLQ} name the same queue {queue.name!r}")
    return ActorSpec(ref=ref, transport=annotations[A_TRANSPORT], queue=queue, delete_queues=deletion == "delete")
