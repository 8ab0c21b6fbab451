"""A2A tasks from our status store: an envelope's record tree and events, seen as an A2A ``Task``.

There is no A2A task table: the task id is the envelope id, and every ``Task``, status update and
artifact update is computed from the status store, so any gateway replica answers for any task. The
mapping, in one place so GetTask, ListTasks, streaming and resubscribe agree:

- status ``pending`` -> submitted, ``running`` -> working, a paused envelope anywhere in the tree ->
  input-required (the status message carries the prompt and the pause's JSON Schema), all settled ->
  completed, or failed when any branch failed/was dead-lettered, ``canceled`` -> canceled;
- FLY chunks -> one growing artifact ``stream`` (a data part per chunk, in order);
- the final record tree -> artifact ``result`` (one data part: the same summary MCP returns, each
  fan-out branch once).
"""

from __future__ import annotations

import uuid
from typing import Any

from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.types import a2a_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from asya_gateway.follow import FINAL, failed, progress_message, summary

STREAM_ARTIFACT, RESULT_ARTIFACT = "stream", "result"
CONTEXT_HEADER = "x-a2a-context-id"

STATUS_OF_STATE = {
    pb.TASK_STATE_SUBMITTED: "pending", pb.TASK_STATE_WORKING: "running",
    pb.TASK_STATE_INPUT_REQUIRED: "paused", pb.TASK_STATE_COMPLETED: "succeeded",
    pb.TASK_STATE_FAILED: "failed", pb.TASK_STATE_CANCELED: "canceled",
}
TERMINAL = (pb.TASK_STATE_COMPLETED, pb.TASK_STATE_FAILED, pb.TASK_STATE_CANCELED, pb.TASK_STATE_REJECTED)


def plain(value: Any) -> Any:
    """A data part's value with whole floats back to ints (protobuf ``Value`` keeps every number a double)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def message_value(message: pb.Message) -> tuple[bool, Any]:
    """``(found, value)`` of a message: its first data part, else its text (JSON if it parses)."""
    import json

    data = get_data_parts(message.parts)
    if data:
        return True, plain(data[0])
    texts = get_text_parts(message.parts)
    if not texts:
        return False, None
    text = "\n".join(texts)
    try:
        return True, json.loads(text)
    except ValueError:
        return True, text


def _walk(record: dict[str, Any]):
    yield record
    for branch in record.get("branches") or []:
        yield from _walk(branch)


def paused_ids(record: dict[str, Any]) -> list[str]:
    """Ids of the envelopes of this tree that wait for input now."""
    return [r["id"] for r in _walk(record) if r.get("status") == "paused"]


def settled(record: dict[str, Any]) -> bool:
    """True when every envelope of the tree is final."""
    return all(r.get("status") in FINAL for r in _walk(record))


def state_of(record: dict[str, Any]) -> int:
    """The A2A task state of a record tree."""
    if record["status"] == "canceled":
        return pb.TASK_STATE_CANCELED
    if settled(record):
        return pb.TASK_STATE_FAILED if failed(record) else pb.TASK_STATE_COMPLETED
    if paused_ids(record):
        return pb.TASK_STATE_INPUT_REQUIRED
    if record["status"] == "pending":
        return pb.TASK_STATE_SUBMITTED
    return pb.TASK_STATE_WORKING


def _timestamp(at: float | None) -> Timestamp:
    stamp = Timestamp()
    if at:
        stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def agent_message(task_id: str, context_id: str, text: str, data: Any = None) -> pb.Message:
    """An agent message of this task: a text part, plus a data part when ``data`` is given."""
    parts = [new_text_part(text)]
    if data is not None:
        parts.append(new_data_part(data))
    return pb.Message(message_id=uuid.uuid4().hex, task_id=task_id, context_id=context_id,
                      role=pb.ROLE_AGENT, parts=parts)


def pause_message(task_id: str, context_id: str, pause: dict[str, Any]) -> pb.Message:
    """The input-required message: the prompt as text, the schema and paused envelope as data."""
    return agent_message(task_id, context_id, pause.get("prompt") or "Input needed",
                         {"envelope_id": pause.get("envelope_id") or task_id, "schema": pause.get("schema")})


def current_pauses(record: dict[str, Any], events: list[Any]) -> list[dict[str, Any]]:
    """The pauses waiting now, with their prompt and schema from the ``paused`` events."""
    waiting = set(paused_ids(record))
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.kind == "paused" and event.envelope_id in waiting:
            data = event.data if isinstance(event.data, dict) else {}
            found[event.envelope_id] = {"envelope_id": event.envelope_id, "prompt": data.get("prompt", ""),
                                        "schema": data.get("schema")}
    return [found.get(i, {"envelope_id": i, "prompt": "", "schema": None}) for i in sorted(waiting)]


def result_artifact(record: dict[str, Any]) -> pb.Artifact:
    """Artifact ``result``: the summary of the final record tree."""
    return pb.Artifact(artifact_id=RESULT_ARTIFACT, name=RESULT_ARTIFACT, parts=[new_data_part(summary(record))])


def final_status(task_id: str, context_id: str, record: dict[str, Any]) -> pb.TaskStatus:
    """The status of a settled (or canceled) task, with the error as the message when it failed."""
    state = state_of(record)
    message = None
    if state in (pb.TASK_STATE_FAILED, pb.TASK_STATE_CANCELED):
        data = summary(record)
        err = data.get("error") or next((b["error"] for b in data.get("branches", []) if "error" in b), {})
        message = agent_message(task_id, context_id, f"{err.get('type', 'Error')}: {err.get('message', '')}", err)
    return pb.TaskStatus(state=state, message=message, timestamp=_timestamp(record.get("updated_at")))


def build_task(record: dict[str, Any], events: list[Any], context_id: str = "",
               include_artifacts: bool = True) -> pb.Task:
    """The ``Task`` of a record tree and its events so far."""
    task_id = record["id"]
    context_id = context_id or task_id
    state = state_of(record)
    if state in TERMINAL:
        status = final_status(task_id, context_id, record)
    elif state == pb.TASK_STATE_INPUT_REQUIRED:
        pauses = current_pauses(record, events)
        status = pb.TaskStatus(state=state, message=pause_message(task_id, context_id, pauses[0]),
                               timestamp=_timestamp(record.get("updated_at")))
    else:
        last = next((e for e in reversed(events) if e.kind != "fly"), None)
        status = pb.TaskStatus(state=state, timestamp=_timestamp(record.get("updated_at")),
                               message=agent_message(task_id, context_id, progress_message(last)) if last else None)
    task = pb.Task(id=task_id, context_id=context_id, status=status)
    task.metadata.update({"envelope_id": task_id})
    if include_artifacts:
        chunks = [e.data for e in events if e.kind == "fly"]
        if chunks:
            task.artifacts.append(pb.Artifact(artifact_id=STREAM_ARTIFACT, name=STREAM_ARTIFACT,
                                              parts=[new_data_part(c) for c in chunks]))
        if state in (pb.TASK_STATE_COMPLETED, pb.TASK_STATE_FAILED):
            task.artifacts.append(result_artifact(record))
    return task


class StreamMapper:
    """Turns one task's events, in order, into A2A status and artifact updates.

    Args:
        task_id: The task (root envelope) id.
        context_id: Its context id.
        chunks_sent: FLY chunks the client already has (so the next one appends to ``stream``).
    """

    def __init__(self, task_id: str, context_id: str, chunks_sent: int = 0):
        self.task_id, self.context_id, self.chunks = task_id, context_id, chunks_sent

    def status(self, state: int, message: pb.Message | None = None, at: float | None = None,
               metadata: dict[str, Any] | None = None) -> pb.TaskStatusUpdateEvent:
        """A status update of this task."""
        update = pb.TaskStatusUpdateEvent(task_id=self.task_id, context_id=self.context_id,
                                          status=pb.TaskStatus(state=state, message=message, timestamp=_timestamp(at)))
        if metadata:
            update.metadata.update(metadata)
        return update

    def updates(self, event: Any) -> list[Any]:
        """The A2A updates of one store event (none for ``created``; the pause ends the stream elsewhere)."""
        meta = {"envelope_id": event.envelope_id, "kind": event.kind, **({"actor": event.actor} if event.actor else {})}
        if event.kind == "fly":
            self.chunks += 1
            artifact = pb.Artifact(artifact_id=STREAM_ARTIFACT, name=STREAM_ARTIFACT, parts=[new_data_part(event.data)])
            return [pb.TaskArtifactUpdateEvent(task_id=self.task_id, context_id=self.context_id, artifact=artifact,
                                               append=self.chunks > 1, last_chunk=False)]
        if event.kind in ("running", "spawned", "resumed"):
            text = progress_message(event)
            return [self.status(pb.TASK_STATE_WORKING, agent_message(self.task_id, self.context_id, text),
                                event.time, meta)]
        if event.kind == "paused":
            data = event.data if isinstance(event.data, dict) else {}
            pause = {"envelope_id": event.envelope_id, "prompt": data.get("prompt", ""), "schema": data.get("schema")}
            return [self.status(pb.TASK_STATE_INPUT_REQUIRED, pause_message(self.task_id, self.context_id, pause),
                                event.time, meta)]
        return []

    def final(self, record: dict[str, Any]) -> list[Any]:
        """The closing updates: artifact ``result`` (unless canceled), then the final status."""
        out: list[Any] = []
        if record["status"] != "canceled":
            out.append(pb.TaskArtifactUpdateEvent(task_id=self.task_id, context_id=self.context_id,
                                                  artifact=result_artifact(record), last_chunk=True))
        out.append(pb.TaskStatusUpdateEvent(task_id=self.task_id, context_id=self.context_id,
                                            status=final_status(self.task_id, self.context_id, record)))
        return out
