"""Tools and API-key files: clear errors at start; keys stored only as hashes; no keys -> loopback only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asya_gateway.auth import ANONYMOUS, ApiKeys, ApiKeysError, bearer_token, hash_token
from asya_gateway.auth import main as keygen
from asya_gateway.tools import ToolsError, load_tools, parse_tools


def test_tools_load_from_yaml_with_defaults(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - name: summarize\n    route: [fetch, summarize]\n    timeout: 2m\n")
    tool = load_tools(path)["summarize"]
    assert tool.route == ["fetch", "summarize"] and tool.timeout_seconds == 120
    assert tool.input_schema == {"type": "object"}


@pytest.mark.parametrize("item, message", [
    ({"name": "Bad Name", "route": ["a"]}, "must match"),
    ({"name": "t", "route": []}, "non-empty list"),
    ({"name": "t", "route": ["happy-end"]}, "may not name"),
    ({"name": "t", "route": ["a"], "inputSchema": {"type": "objekt"}}, "not a valid JSON Schema"),
    ({"name": "t", "route": ["a"], "timeout": "soon"}, "not a duration"),
    ({"name": "t", "route": ["a"], "routes": ["a"]}, "unknown keys ['routes']"),
])
def test_a_bad_tool_is_refused_with_its_name_and_problem(item, message):
    with pytest.raises(ToolsError, match=None) as caught:
        parse_tools({"tools": [item]}, "tools.yaml")
    assert message in str(caught.value) and "tools.yaml" in str(caught.value)


def test_a_missing_tools_file_names_the_path(tmp_path):
    with pytest.raises(ToolsError, match="cannot read tools file .*nope.yaml"):
        load_tools(tmp_path / "nope.yaml")


def test_keys_authenticate_by_hash_with_scopes(tmp_path):
    (tmp_path / "keys.yaml").write_text(json.dumps({"keys": [
        {"id": "ci", "sha256": hash_token("s3cret-token"), "scopes": ["submit", "read"]}]}))
    keys = ApiKeys.load(tmp_path)  # a mounted Secret: a folder of files
    assert not keys.disabled
    principal = keys.authenticate("s3cret-token")
    assert principal.key_id == "ci" and principal.allows("read") and not principal.allows("resume")
    assert keys.authenticate("wrong") is None and keys.authenticate(None) is None
    assert "s3cret-token" not in (tmp_path / "keys.yaml").read_text()


def test_no_keys_means_anonymous_admin():
    keys = ApiKeys.load("")
    assert keys.disabled and keys.authenticate(None) is ANONYMOUS and ANONYMOUS.is_admin


@pytest.mark.parametrize("entry, message", [
    ({"id": "a", "sha256": "plaintext-token", "scopes": ["read"]}, "64 hex digits"),
    ({"id": "a", "sha256": "0" * 64, "scopes": ["write"]}, "subset of"),
    ({"id": "anonymous", "sha256": "0" * 64, "scopes": ["read"]}, "other than"),
])
def test_a_bad_key_entry_is_refused(entry, message):
    with pytest.raises(ApiKeysError, match=message):
        ApiKeys.parse({"keys": [entry]})


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None


def test_keygen_prints_a_token_and_only_its_hash_for_the_file(capsys):
    assert keygen(["--id", "alice", "--scopes", "submit,read"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].rsplit(" ", 1)[1]
    entry = json.loads(out[-1])
    assert entry == {"id": "alice", "sha256": hash_token(token), "scopes": ["submit", "read"]}
    assert ApiKeys.parse({"keys": [entry]}).authenticate(token).key_id == "alice"


def gateway_exit(env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {**os.environ, "ASYA_GATEWAY_PORT": "0", **env}
    return subprocess.run([sys.executable, "-m", "asya_gateway"], env=environ, capture_output=True, text=True,
                          timeout=60)


def test_without_keys_the_gateway_refuses_a_non_loopback_bind(tmp_path):
    done = gateway_exit({"ASYA_GATEWAY_HOST": "0.0.0.0", "ASYA_STATUS_DB": str(tmp_path / "s.sqlite3")})
    assert done.returncode == 2
    assert "ASYA_GATEWAY_HOST=0.0.0.0 needs API keys" in done.stderr


def test_a_bad_tools_file_stops_the_gateway_at_start(tmp_path):
    (tmp_path / "tools.yaml").write_text("tools:\n  - name: x\n    route: nope\n")
    done = gateway_exit({"ASYA_GATEWAY_TOOLS": str(tmp_path / "tools.yaml"),
                         "ASYA_STATUS_DB": str(tmp_path / "s.sqlite3")})
    assert done.returncode == 2 and "tool 'x': route must be a non-empty list" in done.stderr
