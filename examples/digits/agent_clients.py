"""The digits pipeline called the way agents call it: once as an MCP tool, once as an A2A skill.

Start the mesh with its gateway, then run this script against it::

    ASYA_GATEWAY_TOOLS=examples/digits/tools.yaml ASYA_GATEWAY_PORT=8080 \\
        .venv/bin/asya dev examples/digits/actors/*.yaml
    .venv/bin/python examples/digits/agent_clients.py --url http://127.0.0.1:8080 --label 8

A clear scan is classified by the model; a blurred one pauses in human-review and the person's answer
(``--label``, or typed in when omitted) comes back through MCP elicitation and through an A2A follow-up
message. ``--token`` is the API key when the gateway has keys. Prints one JSON line per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

import httpx
import httpx2
import mcp_types as types
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part
from a2a.types import a2a_pb2 as pb
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sklearn.datasets import load_digits


def scans() -> tuple[dict, dict]:
    digits = load_digits()
    clear = {"scan_id": "clear-0", "pixels": digits.data[0].tolist(), "true_label": int(digits.target[0])}
    blurred = [(a + b) / 2 for a, b in zip(digits.data[1787], digits.data[1793])]  # two digits overlaid
    return clear, {"scan_id": f"blurred-{uuid.uuid4().hex[:6]}", "pixels": blurred}


def answer(prompt: str, label: int | None) -> int:
    return label if label is not None else int(input(f"{prompt} "))


async def over_mcp(url: str, headers: dict[str, str], label: int | None) -> None:
    async def elicit(context, params):  # the person answers the paused human-review step
        return types.ElicitResult(action="accept", content={"label": answer(params.message, label)})

    async def progress(done, total, message):
        print(json.dumps({"mcp_progress": message}))

    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http), elicitation_callback=elicit) as mcp:
            for scan in scans():
                result = await mcp.call_tool("classify-digit", scan, progress_callback=progress)
                print(json.dumps({"mcp": scan["scan_id"], **result.structured_content}))


async def over_a2a(url: str, headers: dict[str, str], label: int | None) -> None:
    async with httpx.AsyncClient(headers=headers, timeout=300) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(url)
        _, blurred = scans()
        request = pb.SendMessageRequest(message=pb.Message(
            message_id=uuid.uuid4().hex, role=pb.ROLE_USER, parts=[new_data_part(blurred)]))
        while True:
            async for event in client.send_message(request):
                last = event
            task_id = last.status_update.task_id or last.task.id
            status = last.status_update.status
            if status.state != pb.TASK_STATE_INPUT_REQUIRED:
                break
            prompt = get_text_parts(status.message.parts)[0]  # the same task id resumes it
            request = pb.SendMessageRequest(message=pb.Message(
                message_id=uuid.uuid4().hex, role=pb.ROLE_USER, task_id=task_id,
                parts=[new_data_part({"label": answer(prompt, label)})]))
        task = await client.get_task(pb.GetTaskRequest(id=task_id))
        result = [get_data_parts(a.parts)[0] for a in task.artifacts if a.artifact_id == "result"]
        print(json.dumps({"a2a": blurred["scan_id"], "state": pb.TaskState.Name(task.status.state),
                          **(result[0] if result else {})}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    parser.add_argument("--token", default="", help="API key (when the gateway has keys)")
    parser.add_argument("--label", type=int, help="the person's answer for doubtful scans (asked when omitted)")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    asyncio.run(over_mcp(args.url, headers, args.label))
    asyncio.run(over_a2a(args.url, headers, args.label))


if __name__ == "__main__":
    main()
