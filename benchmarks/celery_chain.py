"""The Celery baseline: a 3-step chain ``a | b | c | sink``, one prefork worker (-c 1) per queue.

Settings are Celery's defaults except what gives it the guarantees our pipeline has: quorum queues
(``x-queue-type``), late acks (ack after the task and its successor's publish) and publisher confirms
on the workers. ``sink`` has no worker: the benchmark drains its queue and reads the payload from the
task message (protocol 2, JSON body ``[args, kwargs, embed]``).

The broker comes from ``ASYA_BENCH_CELERY_BROKER``; ``ASYA_BENCH_CELERY_CLIENT=1`` turns publisher
confirms off for the benchmark's own publishing (its speed is not what is measured).
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

QUEUES = ["bench-celery-a", "bench-celery-b", "bench-celery-c", "bench-celery-sink"]
_QUORUM = {"x-queue-type": "quorum"}

app = Celery("asya_bench", broker=os.environ.get("ASYA_BENCH_CELERY_BROKER", "amqp://guest@127.0.0.1//"))
app.conf.update(
    task_queues=[Queue(name, routing_key=name, queue_arguments=_QUORUM) for name in QUEUES],
    task_routes={f"bench.{step}": {"queue": f"bench-celery-{step}"} for step in ("a", "b", "c", "sink")},
    task_acks_late=True,
    task_ignore_result=True,
    broker_transport_options={} if os.environ.get("ASYA_BENCH_CELERY_CLIENT") else {"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.a")
def a(payload):
    return payload


@app.task(name="bench.b")
def b(payload):
    return payload


@app.task(name="bench.c")
def c(payload):
    return payload


@app.task(name="bench.sink")
def sink(payload):  # never runs: the benchmark drains bench-celery-sink itself
    return payload


def send(payload) -> None:
    """Publishes one chain ``a | b | c | sink`` carrying ``payload``."""
    (a.s(payload) | b.s() | c.s() | sink.s()).apply_async()
