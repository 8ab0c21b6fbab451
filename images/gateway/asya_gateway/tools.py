"""Tools: the named, schema-checked entry points clients call (``POST /envelopes {"tool", "arguments"}``).

A tool maps a name to a route through the mesh plus the JSON Schema its arguments must match, so a
client never needs to know actor names and bad input is refused before anything is recorded. The same
definitions feed ``GET /tools`` and the MCP/A2A faces. Loaded once from a YAML or JSON file::

    tools:
      - name: classify-digit
        description: Classify an 8x8 scan
        route: [validate, classify, judge]
        timeout: 60s
        inputSchema: {type: object, required: [pixels], properties: {pixels: {type: array}}}
      - name: review
        flow: review_flow        # instead of route: the entry route of a compiled Flow DSL flow

A ``flow`` is read from ``<flowsDir>/<flow>.routes.json`` as written by ``asya flow compile``
(``flowsDir`` is a top-level key, default: the tools file's directory; see docs/flows.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from asya_common.envelope import TERMINAL_ACTORS
from asya_common.settings import parse_duration

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_KEYS = {"name", "description", "route", "flow", "inputSchema", "input_schema", "timeout", "cancelOnDisconnect"}


class ToolsError(ValueError):
    """The tools file is invalid; the message names the file, the tool and the problem."""


@dataclass(frozen=True)
class Tool:
    """One callable tool."""

    name: str
    description: str
    route: list[str]
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    timeout_seconds: float = 300.0
    cancel_on_disconnect: bool = False

    def validator(self) -> jsonschema.protocols.Validator:
        """A validator of this tool's arguments (the schema's own draft, 2020-12 by default)."""
        cls = jsonschema.validators.validator_for(self.input_schema, default=jsonschema.Draft202012Validator)
        return cls(self.input_schema, format_checker=cls.FORMAT_CHECKER)

    def describe(self) -> dict[str, Any]:
        """The JSON shown by ``GET /tools``."""
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema,
                "timeoutSeconds": self.timeout_seconds}


def _flow_route(flow: Any, flows_dir: Path, where: str) -> list[str]:
    """The entry route of a compiled flow (``<flows_dir>/<flow>.routes.json`` from ``asya flow compile``)."""
    if not isinstance(flow, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", flow):
        raise ToolsError(f"{where}: flow must be the name of a flow function, got {flow!r}")
    path = flows_dir / f"{flow}.routes.json"
    try:
        return list(json.loads(path.read_text())["entry"]["route"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolsError(f"{where}: cannot read compiled flow {path} ({exc}); run `asya flow compile`") from None


def parse_tools(data: Any, source: str = "tools", base_dir: Path | None = None) -> dict[str, Tool]:
    """Builds tools from parsed YAML/JSON (``{"tools": [...]}`` or a bare list).

    Raises:
        ToolsError: A tool is malformed; the message names it.
    """
    items = data.get("tools", []) if isinstance(data, dict) else data
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ToolsError(f"{source}: 'tools' must be a list")
    tools: dict[str, Tool] = {}
    for index, item in enumerate(items):
        where = f"{source}: tools[{index}]"
        if not isinstance(item, dict):
            raise ToolsError(f"{where} must be a mapping")
        unknown = set(item) - _KEYS
        if unknown:
            raise ToolsError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_KEYS)})")
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise ToolsError(f"{where}: name {name!r} must match {NAME.pattern}")
        where = f"{source}: tool {name!r}"
        if name in tools:
            raise ToolsError(f"{where} is defined twice")
        route = item.get("route")
        if "flow" in item:  # a Flow DSL flow instead of a route
            if route is not None:
                raise ToolsError(f"{where}: give either route or flow, not both")
            flows_dir = Path(data.get("flowsDir", ".") if isinstance(data, dict) else ".")
            route = _flow_route(item["flow"], (base_dir or Path(".")) / flows_dir, where)
        if not isinstance(route, list) or not route or not all(isinstance(a, str) and a for a in route):
            raise ToolsError(f"{where}: route must be a non-empty list of actor names")
        if any(a in TERMINAL_ACTORS for a in route):
            raise ToolsError(f"{where}: route may not name {', '.join(TERMINAL_ACTORS)}")
        schema = item.get("inputSchema", item.get("input_schema", {"type": "object"}))
        if not isinstance(schema, dict):
            raise ToolsError(f"{where}: inputSchema must be a JSON Schema object")
        try:
            jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ToolsError(f"{where}: inputSchema is not a valid JSON Schema: {exc.message}") from None
        try:
            timeout = parse_duration(item.get("timeout", 300))
        except ValueError as exc:
            raise ToolsError(f"{where}: timeout {exc}") from None
        tools[name] = Tool(name=name, description=str(item.get("description", "")), route=list(route),
                           input_schema=schema, timeout_seconds=timeout,
                           cancel_on_disconnect=bool(item.get("cancelOnDisconnect", False)))
    return tools


def load_tools(path: str | Path) -> dict[str, Tool]:
    """Reads a tools file (YAML or JSON).

    Raises:
        ToolsError: Missing or unreadable file, bad syntax, or an invalid tool.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ToolsError(f"cannot read tools file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ToolsError(f"tools file {path} does not parse: {exc}") from None
    return parse_tools(data or {}, str(path), path.parent)
