"""Prometheus metrics of the controller (served on /metrics by asya_common.health)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LABELS = ("namespace", "actor", "queue")

DLQ_DEPTH = Gauge("asya_dlq_depth", "Messages in the actor's dead-letter queue", LABELS)
DLQ_OLDEST_AGE = Gauge(
    "asya_dlq_oldest_age_seconds", "Age of the oldest message seen in the actor's dead-letter queue (0 when empty)",
    LABELS)
QUEUE_DEPTH = Gauge("asya_queue_depth", "Messages waiting in the actor's queue (measured with the DLQs)", LABELS)
RECONCILES = Counter("asya_controller_reconciles_total", "Actor reconciliations by outcome", ["outcome"])
QUEUES_CREATED = Counter("asya_controller_queues_created_total", "Queues created by the controller")
DRIFTED_ACTORS = Gauge("asya_controller_drifted_actors", "Actors whose queues differ from their annotations")
RELISTS = Counter("asya_controller_relists_total", "Full lists of actor Deployments, by cause", ["cause"])
WATCH_RESTARTS = Counter("asya_controller_watch_restarts_total", "Watch streams re-opened, by cause", ["cause"])
IS_LEADER = Gauge("asya_controller_leader", "1 while this replica holds the leader Lease")
KNOWN_ACTORS = Gauge("asya_controller_actors", "Actor Deployments currently known")
