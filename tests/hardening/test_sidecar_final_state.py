"""Issue 10, item 1: whatever a message contains, the sidecar ends it in one decision (a real dev mesh).

Before the fix each of these bodies crashed the sidecar's message task (UnicodeEncodeError,
RecursionError, MessageTooLarge while publishing to error-end, a nack with a delay of 31 million
years): the lease ran out, the message was redelivered until its DLQ took it, and no final record was
ever written. Now each ends in error-end, acked, with the raw body (truncated when it must be, and
the record says so).
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from asya_common import envelope as env
from tests.hardening.conftest import LIMIT, records_with_raw_body
from tests.support.require import wait_for


def _raw_record(hmesh, marker: bytes, timeout: float = 30) -> dict:
    def find():
        for record in records_with_raw_body(hmesh):
            if marker in env.raw_body(record):
                return record
        return None
    return wait_for(find, timeout, what=f"an error-end record keeping {marker!r}")


def _envelope_body(marker: str, **overrides) -> dict:
    body = {"id": f"hd-{marker}", "route": {"prev": [], "curr": "echo", "next": []}, "headers": {}, "payload": {}}
    body.update(overrides)
    return body


@pytest.mark.parametrize("case, body", [
    ("surrogate-payload", b'{"id": "hd-sp", "route": {"curr": "echo"}, "payload": "\\ud800 MARK-sp"}'),
    ("surrogate-id", b'{"id": "\\udc00 MARK-si", "route": {"curr": "echo"}, "payload": 1}'),
    ("deep", b'{"id": "hd-deep", "route": {"curr": "echo"}, "MARK-deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("not-before-infinity", b'{"id": "hd-inf", "route": {"curr": "echo"}, "headers": {"x-asya-not-before": Infinity}, '
                            b'"payload": "MARK-inf"}'),
    ("long-route", json.dumps(_envelope_body("lr", route={"curr": "echo", "next": ["r" * 300]},
                                             payload="MARK-lr")).encode()),
    ("route-to-dlq", json.dumps(_envelope_body("rd", route={"curr": "echo", "next": ["judge-dlq"]},
                                               payload="MARK-rd")).encode()),
], ids=lambda v: v if isinstance(v, str) else "")
def test_hostile_bodies_end_in_error_end_with_their_raw_body(hmesh, case, body):
    hmesh.send_bodies("echo", [body])
    marker = body[body.index(b"MARK-"):].split(b'"')[0].split(b"\\")[0].split(b":")[0]
    record = _raw_record(hmesh, marker)
    assert record["headers"][env.H_ERROR]["type"] == "MalformedEnvelope"
    kept = env.raw_body(record)
    assert kept == body or (body.startswith(kept) and record["headers"][env.H_RAW_BODY]["truncated"])


def test_a_malformed_body_too_large_to_wrap_is_kept_truncated_and_says_so(hmesh):
    body = b"MARK-big " + b"\xff" * (LIMIT - 2000)  # base64 inside a wrapper would be ~1.33x the limit
    hmesh.send_bodies("echo", [body])
    record = _raw_record(hmesh, b"MARK-big")
    kept = record["headers"][env.H_RAW_BODY]
    assert kept["truncated"] is True and kept["original_bytes"] == len(body)
    assert body.startswith(base64.b64decode(kept["data"])) and len(base64.b64decode(kept["data"])) > LIMIT // 3
    assert "truncated" in record["headers"][env.H_ERROR]["message"]


def test_an_output_over_the_limit_ends_in_error_end(hmesh):
    sent = hmesh.send(["grow", "echo"], {"size": LIMIT * 2})
    record = hmesh.wait_final(sent["id"])
    assert record["status"] == "failed" and record["error"]["type"] == "MessageTooLarge"


def test_an_error_envelope_over_the_limit_keeps_a_truncated_body_and_says_so(hmesh):
    # a payload near the limit plus an error message of 20 KB (twice: error and attempts) cannot fit
    sent = hmesh.send(["fail-loud"], {"size": 20_000, "pad": "p" * (LIMIT - 25_000)})
    record = hmesh.wait_final(sent["id"])
    assert record["status"] == "failed"
    final = hmesh.final_envelope(sent["id"])
    assert final["headers"]["x-asya-truncated"]["original_bytes"] > LIMIT
    assert "truncated" in final["headers"][env.H_ERROR]["message"]
    assert final["headers"][env.H_ERROR]["type"] == "ValueError"
    assert base64.b64decode(final["headers"][env.H_RAW_BODY]["data"]).startswith(b"{")


def test_a_retry_time_no_policy_can_write_ends_in_error_end(hmesh):
    sent = hmesh.send(["echo"], {"n": 1}, headers={env.H_NOT_BEFORE: 1e15})
    record = hmesh.wait_final(sent["id"])
    assert record["status"] == "failed" and record["error"]["type"] == "InvalidHeader"
    assert "no retry waits longer" in record["error"]["message"]


def test_set_route_next_to_a_dlq_ends_in_error_end(hmesh):
    sent = hmesh.send(["dlq-router"], {"n": 1})
    record = hmesh.wait_final(sent["id"])
    assert record["status"] == "failed" and "dead-letter queue" in record["error"]["message"]


def test_nothing_was_left_in_a_queue_or_dead_lettered(hmesh):
    """Runs last in this module: every hostile message above was acked, none is looping or in a DLQ."""
    import asyncio

    from asya_common.transport import create_transport

    async def depths():
        async with create_transport(hmesh.transport_settings) as transport:
            return {name: (await transport.depth(env.queue_name(name)), await transport.depth(env.dlq_name(name)))
                    for name in ("echo", "grow", "fail-loud", "dlq-router", "error-end")}

    def settled():
        found = asyncio.run(depths())
        return found if all(q.total == 0 and d.total == 0 for q, d in found.values()) else None

    wait_for(settled, 30, what="empty queues and DLQs")
