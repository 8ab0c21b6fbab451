"""How records and pause schemas map to MCP and A2A shapes (pure functions; no server needed)."""

from __future__ import annotations

import pytest
from a2a.types import a2a_pb2 as pb

from asya_gateway import a2a_tasks as at
from asya_gateway.follow import error_of, failed, summary
from asya_gateway.mcp_face import elicitable


def record(envelope_id, status, **extra):
    return {"id": envelope_id, "status": status, **extra}


@pytest.mark.parametrize("schema, fits", [
    ({"type": "object", "properties": {"label": {"type": "integer"}, "note": {"type": "string"}}}, True),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "enum": ["a"]}}}},
     True),
    ({"type": "object", "properties": {"review": {"type": "object"}}}, False),   # nested: no flat form
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}, False),
    ({"type": "object"}, False),                                                  # nothing to ask
    (None, False),
    ({"type": "string"}, False),
])
def test_only_flat_primitive_pause_schemas_are_elicited(schema, fits):
    assert elicitable(schema) is fits


def test_a2a_state_of_a_record_tree():
    assert at.state_of(record("a", "pending")) == pb.TASK_STATE_SUBMITTED
    assert at.state_of(record("a", "running")) == pb.TASK_STATE_WORKING
    assert at.state_of(record("a", "paused")) == pb.TASK_STATE_INPUT_REQUIRED
    assert at.state_of(record("a", "succeeded", branches=[record("a-1", "paused")])) == pb.TASK_STATE_INPUT_REQUIRED
    assert at.state_of(record("a", "succeeded", branches=[record("a-1", "running")])) == pb.TASK_STATE_WORKING
    assert at.state_of(record("a", "succeeded", branches=[record("a-1", "succeeded")])) == pb.TASK_STATE_COMPLETED
    assert at.state_of(record("a", "succeeded", branches=[record("a-1", "dead_lettered")])) == pb.TASK_STATE_FAILED
    assert at.state_of(record("a", "canceled")) == pb.TASK_STATE_CANCELED
    assert set(at.STATUS_OF_STATE.values()) == {"pending", "running", "paused", "succeeded", "failed", "canceled"}


def test_summary_lists_each_branch_once_with_its_result_or_error():
    tree = record("a", "succeeded", result={"n": 0}, branches=[
        record("a-1", "failed", error={"type": "ValueError", "message": "bad", "attempts": []}),
        record("a-2", "succeeded", result={"n": 2})])
    data = summary(tree)
    assert data == {"envelope_id": "a", "status": "succeeded", "result": {"n": 0}, "branches": [
        {"envelope_id": "a-1", "status": "failed", "error": {"type": "ValueError", "message": "bad"}},
        {"envelope_id": "a-2", "status": "succeeded", "result": {"n": 2}}]}
    assert failed(tree)
    assert not failed(record("a", "succeeded"))


def test_error_of_reads_the_last_attempt_when_the_top_level_has_no_type():
    assert error_of(record("a", "failed", error={"attempts": [{"type": "KeyError", "message": "x"}]})) == \
        {"type": "KeyError", "message": "x"}
    assert error_of(record("a", "dead_lettered", error={"queue": "asya-x-dlq"}))["type"] == "DeadLettered"


def test_data_part_numbers_come_back_as_integers_when_whole():
    assert at.plain({"label": 3.0, "score": 0.5, "pixels": [1.0, 2.5]}) == {"label": 3, "score": 0.5,
                                                                            "pixels": [1, 2.5]}
