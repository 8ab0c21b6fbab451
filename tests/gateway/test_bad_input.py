"""Bad input: each a clear 4xx JSON error naming the problem, and nothing recorded or published.

Runs on a SQLite and a PostgreSQL status store. "Nothing recorded" is checked by counting the store's
records (as admin); "nothing published" by the depth of the queue the tool routes to.
"""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import TOKENS
from tests.gateway.harness import StepActor, auth, depth


def records(gateway) -> int:
    return len(httpx.get(f"{gateway.url}/envelopes", params={"limit": 500}, headers=auth(TOKENS["root"]))
               .json()["records"])


@pytest.fixture
def untouched(gateway):
    """Drains the echo queue, then checks after the test that no record and no message appeared."""
    actor = StepActor(gateway.backend.location, gateway.transport, "echo")
    try:
        while depth(gateway.transport, "echo"):
            actor.take()
    finally:
        actor.close()
    count = records(gateway)
    yield
    assert depth(gateway.transport, "echo") == 0, "a refused request published an envelope"
    assert records(gateway) == count, "a refused request left a record"


def post(gateway, content: bytes | None = None, json=None, token=TOKENS["alice"], headers=None):
    return httpx.post(f"{gateway.url}/envelopes", content=content, json=json,
                      headers={**auth(token), **(headers or {})}, timeout=60)


def check(response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]


def test_unknown_tool(gateway, untouched):
    check(post(gateway, json={"tool": "ecoh", "arguments": {"text": "x"}}), 404, "unknown_tool", "'ecoh'", "echo")


def test_arguments_that_break_the_schema_name_the_path(gateway, untouched):
    response = post(gateway, json={"tool": "echo", "arguments": {"text": "x", "n": "three"}})
    check(response, 422, "invalid_arguments", "$.n", "'three' is not of type 'integer'")
    assert response.json()["error"]["path"] == "$.n"
    check(post(gateway, json={"tool": "echo", "arguments": {}}), 422, "invalid_arguments", "'text' is a required")


def test_a_10_mb_body_is_refused_before_it_is_read(gateway, untouched):
    body = b'{"tool": "echo", "arguments": {"text": "' + b"x" * (10 * 1024 * 1024) + b'"}}'
    check(post(gateway, content=body, headers={"content-type": "application/json"}), 413, "payload_too_large",
          "exceeds the limit of 65536 bytes")


def test_a_chunked_body_over_the_limit_is_refused_too(gateway, untouched):
    def chunks():
        yield b'{"tool": "echo", "arguments": {"text": "'
        for _ in range(40):
            yield b"y" * 4096
        yield b'"}}'

    check(post(gateway, content=chunks()), 413, "payload_too_large", "exceeds the limit")


def test_invalid_json_and_wrong_shapes(gateway, untouched):
    check(post(gateway, content=b'{"tool": "echo", '), 400, "invalid_json", "not JSON")
    check(post(gateway, json=["echo"]), 400, "bad_request", "JSON object")
    check(post(gateway, json={"tool": "echo", "route": ["echo"]}), 400, "bad_request", "either 'tool'")
    check(post(gateway, json={"tool": "echo", "arguments": "text"}), 400, "bad_request", "'arguments'")
    check(post(gateway, json={"tool": "echo", "arguments": {"text": "x"}, "priority": 1}), 400, "bad_request",
          "unknown keys ['priority']")
    check(post(gateway, json={"tool": "echo", "arguments": {"text": "x"}, "headers": {"x-asya-attempt": 9}}), 400,
          "bad_request", "x-asya-")


def test_missing_and_wrong_api_keys(gateway, untouched):
    missing = post(gateway, json={"tool": "echo", "arguments": {"text": "x"}}, token=None)
    check(missing, 401, "unauthorized", "no API key")
    assert missing.headers["www-authenticate"] == "Bearer"
    check(post(gateway, json={"tool": "echo", "arguments": {"text": "x"}}, token="guessed"), 401, "unauthorized",
          "unknown API key")
    check(post(gateway, json={"tool": "echo", "arguments": {"text": "x"}}, token=TOKENS["viewer"]), 403, "forbidden",
          "'submit'")


def test_another_keys_record_is_not_found(gateway):
    created = post(gateway, json={"tool": "echo", "arguments": {"text": "mine"}}).json()["id"]
    for path in (f"/envelopes/{created}", f"/envelopes/{created}/stream"):
        check(httpx.get(f"{gateway.url}{path}", headers=auth(TOKENS["bob"])), 404, "not_found", created)
    check(httpx.post(f"{gateway.url}/envelopes/{created}/resume", json={"input": {}}, headers=auth(TOKENS["bob"])),
          404, "pause_not_found")
    check(httpx.get(f"{gateway.url}/envelopes/nonexistent", headers=auth(TOKENS["alice"])), 404, "not_found")
    assert httpx.get(f"{gateway.url}/envelopes/{created}", headers=auth(TOKENS["root"])).status_code == 200
