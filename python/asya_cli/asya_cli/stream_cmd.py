"""``asya send --stream``: submit through a gateway and print FLY chunks as they arrive, then the final record.

The gateway is the dev mesh's (``<state dir>/gateway.url``, written by ``asya dev``) or a remote one
(``ASYA_GATEWAY_URL``, with ``ASYA_GATEWAY_TOKEN`` as its API key). Text chunks (a string, or a dict
with ``text``/``token``/``delta``/``content``) are printed as they come, without newlines, like tokens
of an LLM; other chunks as one JSON line each. A dropped connection is resumed with Last-Event-ID,
so nothing is missed or printed twice. Standard library HTTP only.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

from asya_common.settings import env_field, load_settings
from asya_cli.common import CliError
from asya_cli.dev_gateway import read_url

TEXT_KEYS = ("text", "token", "delta", "content")


@dataclass(frozen=True)
class GatewayClientSettings:
    """Where ``asya send --stream`` finds the gateway."""

    url: str = env_field("ASYA_GATEWAY_URL", default="", help="remote gateway base URL (default: the dev mesh's)")
    token: str = env_field("ASYA_GATEWAY_TOKEN", default="", help="API key for the gateway (Bearer token)")


class Gateway:
    """A minimal client of the gateway's REST/SSE API."""

    def __init__(self, url: str, token: str = ""):
        self.url, self.token = url.rstrip("/"), token

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Content-Type": "application/json", **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            **(headers or {})})
        try:
            return urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise CliError(f"gateway {self.url} answered {exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise CliError(f"gateway {self.url} unreachable: {exc.reason}") from None

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs an envelope; returns the 202 body."""
        with self._request("POST", "/envelopes", body) as response:
            return json.loads(response.read())

    def events(self, envelope_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(event, data)`` of the envelope's stream until ``end``, reconnecting with Last-Event-ID."""
        last, failures = "0", 0
        while True:
            try:
                with self._request("GET", f"/envelopes/{envelope_id}/stream", headers={"Last-Event-ID": last}) as resp:
                    for event_id, event, data in _frames(resp):
                        failures = 0
                        if event_id:
                            last = event_id
                        yield event, data
                        if event == "end":
                            return
            except (OSError, CliError) as exc:
                failures += 1
                if failures > 5:
                    raise CliError(f"lost the stream of {envelope_id}: {exc}") from None
                time.sleep(min(2.0, 0.2 * failures))


def _frames(response) -> Iterator[tuple[str | None, str, dict[str, Any]]]:
    event_id, event, data = None, "message", []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


def chunk_text(chunk: Any) -> str | None:
    """The text of a FLY chunk, or None when it is structured data."""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, dict):
        for key in TEXT_KEYS:
            if isinstance(chunk.get(key), str):
                return chunk[key]
    return None


def gateway_for(state_dir: Path, environ: dict[str, str]) -> Gateway:
    """The remote gateway (``ASYA_GATEWAY_URL``) or the running dev mesh's.

    Raises:
        CliError: Neither is available.
    """
    settings = load_settings(GatewayClientSettings, environ)
    url = settings.url or read_url(state_dir)
    if not url:
        raise CliError(f"no gateway: start `asya dev` (it writes {state_dir}/gateway.url) or set ASYA_GATEWAY_URL")
    return Gateway(url, settings.token)


def run(body: dict[str, Any], gateway: Gateway, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Submits ``body``, prints chunks and then the final record; exit 0 succeeded, 1 failed/canceled."""
    accepted = gateway.submit(body)
    envelope_id = accepted["id"]
    print(f"{envelope_id}  (trace: {gateway.url}/ui/envelopes/{envelope_id})", file=err, flush=True)
    in_text = False
    record: dict[str, Any] = {"id": envelope_id, "status": "pending"}
    for event, data in gateway.events(envelope_id):
        if event == "fly":
            text = chunk_text(data.get("data"))
            if text is None:
                if in_text:
                    out.write("\n")
                out.write(json.dumps(data.get("data"), ensure_ascii=False) + "\n")
                in_text = False
            else:
                out.write(text)
                in_text = True
            out.flush()
        elif event == "paused":
            spec = data.get("data") or {}
            print(f"\npaused at {data.get('actor')}: {spec.get('prompt', '')!r}; resume with: asya paused resume "
                  f"{data.get('envelope_id')} --input JSON  (or POST {gateway.url}/envelopes/"
                  f"{data.get('envelope_id')}/resume)", file=err, flush=True)
        elif event == "end":
            record = data
        elif event == "error":
            raise CliError(f"stream of {envelope_id} failed: {data.get('message')}")
    if in_text:
        out.write("\n")
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    return 0 if record.get("status") == "succeeded" else 1


def _payload(raw: str | None) -> Any:
    if raw is None:
        raise CliError("--stream needs --payload (JSON, @file.json or - for stdin)")
    text = sys.stdin.read() if raw == "-" else Path(raw[1:]).read_text() if raw.startswith("@") else raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--payload is not JSON: {exc.msg} at column {exc.colno}") from None


def send(args: Any, environ: dict[str, str]) -> int:
    """``asya send --stream [--tool NAME | --route a,b] --payload JSON``."""
    payload = _payload(args.payload)
    headers = {}
    for pair in args.header or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--header needs key=value, got {pair!r}")
        headers[key] = value
    if getattr(args, "tool", None):
        if not isinstance(payload, dict):
            raise CliError("--tool takes its arguments as a JSON object in --payload")
        body: dict[str, Any] = {"tool": args.tool, "arguments": payload}
    else:
        route = [a.strip() for a in (args.route or "").split(",") if a.strip()]
        if not route:
            raise CliError("--stream needs --tool NAME or --route a,b,c")
        body = {"route": route, "payload": payload}
    if headers:
        body["headers"] = headers
    return run(body, gateway_for(Path(args.state_dir), environ))
