"""Generates a flow's deployable output from its graph: the entry route, router handlers, values files.

Routers sit wherever a decision follows an actor call (or the flow starts with one). A router's
handler is straight Python pasted from the flow's own expressions: it updates the state, decides,
and sets ``route.next`` to the actor calls that follow, up to the next router. ``try`` sections
become ``on_error`` entries on the envelope (hop windows the sidecar matches when a call fails).
Names are numbered in a fixed traversal order, so the same flow always compiles to the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asya_cli.flow.graph import (LOGIC, AnyNode, Assign, Branch, Call, End, FanOut, Flow, FlowCompileError,
                                 SetCounter, TryEnd, TryStart)
from asya_cli.flow.parse import parse_source

FAN_IN = "fan-in"
FAN_IN_HANDLER = "asya_crew.fanin.fan_in"
MAX_ROUTER_LINES = 4000

RUNTIME_HELPERS = '''
import copy

FLOW_HEADER = "x-asya-flow"  # loop counters and the fan-out count of this envelope
FAN_IN_HEADER = "x-asya-fanin"  # which fan-out group a child or parent carrier belongs to
FAN_IN = "fan-in"


def _counters(envelope):
    return dict((envelope["headers"].get(FLOW_HEADER) or {}).get("counters") or {})


def _go(envelope, state, counters, route, on_error, offset=1):
    """Sets the state and the rest of the route; ``on_error`` hop windows start at this router + offset."""
    hop = len(envelope["route"]["prev"]) + offset
    envelope["payload"] = state
    envelope["route"]["next"] = list(route)
    flow = dict(envelope["headers"].get(FLOW_HEADER) or {})
    if counters or flow:
        flow["counters"] = counters
        envelope["headers"][FLOW_HEADER] = flow
    if on_error:
        envelope["on_error"] = [dict(e, hops=[e["hops"][0] + hop, e["hops"][1] + hop]) for e in on_error]
    else:
        envelope.pop("on_error", None)
    return envelope


def _fan_out(envelope, state, counters, router, actor, items, into, route, on_error):
    """One child per item (to ``actor`` then the fan-in) plus the parent carrier (to the fan-in, then ``route``)."""
    flow = dict(envelope["headers"].get(FLOW_HEADER) or {})
    flow["fanouts"] = flow.get("fanouts", 0) + 1
    envelope["headers"][FLOW_HEADER] = flow
    group = "%s/%s/%d" % (envelope["id"], router, flow["fanouts"])
    children = []
    for index, item in enumerate(items):
        child = copy.deepcopy({k: v for k, v in envelope.items() if k not in ("payload", "on_error")})
        child["payload"] = item
        child["route"]["next"] = [actor, FAN_IN]
        child["headers"].pop(FLOW_HEADER, None)
        child["headers"][FAN_IN_HEADER] = {"group": group, "role": "child", "index": index, "count": len(items)}
        children.append(child)
    parent = _go(envelope, state, counters, [FAN_IN, *route], on_error, offset=2)
    parent["headers"][FAN_IN_HEADER] = {"group": group, "role": "parent", "count": len(items), "into": into}
    return [parent, *children]
'''


@dataclass
class CompiledFlow:
    """Everything ``asya flow compile`` writes for one flow."""

    name: str
    module: str  # importable module name of the routers
    module_text: str
    routes: dict[str, Any]
    values: dict[str, str] = field(default_factory=dict)  # file name -> YAML text

    def entry(self) -> dict[str, Any]:
        """``{"route": [...]}``: the route a new envelope of this flow starts with."""
        return self.routes["entry"]


class _Generator:
    def __init__(self, flow: Flow, source_lines: list[str], file_name: str):
        self.flow, self.lines, self.file = flow, source_lines, file_name
        self.prefix = flow.name.replace("_", "-")
        self.names: dict[int, str] = {}
        self.queue: list[AnyNode] = []

    def router(self, node: AnyNode) -> str:
        key = id(node)
        if key not in self.names:
            name = f"{self.prefix}-router-{len(self.names) + 1}"
            if len(name) > 40:
                raise FlowCompileError(self.flow.path, self.flow.line, 1, f"router name {name!r} is longer than 40 "
                                       "characters; give the flow function a shorter name")
            self.names[key] = name
            self.queue.append(node)
        return self.names[key]

    def path(self, node: AnyNode | None) -> tuple[list[str], list[dict[str, Any]]]:
        """The hops from ``node`` up to (and including) the next router, with the try sections on the way."""
        route: list[str] = []
        on_error: list[dict[str, Any]] = []
        open_tries: list[tuple[int, TryStart]] = []
        while node is not None:
            if isinstance(node, Call):
                route.append(node.actor)
                node = node.next
            elif isinstance(node, TryStart):
                open_tries.append((len(route), node))
                node = node.next
            elif isinstance(node, TryEnd):
                start, try_node = open_tries.pop()
                for handler in try_node.handlers:
                    on_error.append({"errors": list(handler.errors), "hops": [start, len(route)],
                                     "next": self.except_route(handler.body)})
                node = node.next
            elif isinstance(node, End):
                break
            else:
                route.append(self.router(node))
                break
        return route, on_error

    def except_route(self, node: AnyNode) -> list[str]:
        route, on_error = self.path(node)
        return [self.router(node)] if on_error else route

    def entry(self) -> dict[str, Any]:
        """The start route; a plain list of actors (a router first when a ``try`` needs ``on_error`` set)."""
        node = self.flow.entry
        if isinstance(node, LOGIC) or _try_before_router(node):
            return {"route": [self.router(node)]}
        return {"route": self.path(node)[0]}

    def function(self, node: AnyNode) -> list[str]:
        name = self.names[id(node)]
        index = name.rsplit("-", 1)[1]
        snippet = self.lines[node.line - 1].strip() if 0 < node.line <= len(self.lines) else ""
        doc = f"{name}: {self.file} line {node.line}: {snippet[:100]}"
        plain = '"""' not in doc and not doc.endswith('"') and "\\" not in doc
        out = [f"def router_{index}(envelope):",
               f'    """{doc}"""' if plain else f"    {doc!r}",
               f'    {self.flow.state}, counters = envelope["payload"], _counters(envelope)']
        self.body(node, 1, out, set())
        return out

    def body(self, node: AnyNode, depth: int, out: list[str], active: set[int]) -> None:
        pad = "    " * depth
        s = self.flow.state
        if len(out) > MAX_ROUTER_LINES:
            raise FlowCompileError(self.flow.path, node.line, node.col, "this flow's decisions expand into too much "
                                   "router code; call an actor between consecutive decisions")
        if isinstance(node, Branch):
            if id(node) in active:
                raise FlowCompileError(self.flow.path, node.line, node.col, f"this `{node.kind}` loop can repeat "
                                       "without calling an actor; every path through a loop body must call one")
            active = active | {id(node)}
            out.append(f"{pad}if {node.condition}:")
            self.body(node.then, depth + 1, out, active)
            out.append(f"{pad}else:")
            self.body(node.orelse, depth + 1, out, active)
        elif isinstance(node, Assign):
            out.append(f"{pad}{node.target} = {node.value}")
            self.body(node.next, depth, out, active)
        elif isinstance(node, SetCounter):
            out.append(f"{pad}counters[{node.name!r}] = {node.value}")
            self.body(node.next, depth, out, active)
        elif isinstance(node, FanOut):
            out.append(f"{pad}items = list({node.items})")
            out.append(f"{pad}if not items:")
            out.append(f"{pad}    {node.into_code} = []")
            self.body(node.next, depth + 1, out, active)
            route, on_error = self.path(node.next)
            out.append(f"{pad}return _fan_out(envelope, {s}, counters, {self.current!r}, {node.actor!r}, items, "
                       f"{node.into!r}, {route!r}, {on_error!r})")
        else:
            route, on_error = self.path(node)
            out.append(f"{pad}return _go(envelope, {s}, counters, {route!r}, {on_error!r})")

    def generate(self) -> CompiledFlow:
        entry = self.entry()
        functions: list[list[str]] = []
        done = 0
        while done < len(self.queue):
            node = self.queue[done]
            self.current = self.names[id(node)]
            functions.append(self.function(node))
            done += 1
        module = f"{self.flow.name}_routers"
        header = [f'"""Routers of flow `{self.flow.name}`, generated by `asya flow compile {self.file}`; do not edit.',
                  "",
                  "Each function is the handler of one router actor (envelope mode, standard library only): it",
                  "evaluates the flow's decisions on the payload and sets route.next to the actors that follow.",
                  '"""']
        text = "\n".join(header) + "\n" + RUNTIME_HELPERS + "".join("\n\n" + "\n".join(f) + "\n" for f in functions)
        fan_in = any(isinstance(n, FanOut) for n in _all_nodes(self.flow.entry))
        routers = [{"name": self.names[id(n)], "handler": f"{module}.router_{self.names[id(n)].rsplit('-', 1)[1]}",
                    "line": n.line} for n in self.queue]
        routes = {"flow": self.flow.name, "file": self.file, "entry": entry, "actors": sorted(self.flow.actors),
                  "routers": routers, "fan_in": fan_in}
        values = {f"{r['name']}.yaml": _values_text(self.file, self.flow.name, {
            "name": r["name"], "handler": r["handler"], "handlerMode": "envelope", "concurrency": 4}) for r in routers}
        if fan_in:
            values[f"{FAN_IN}.yaml"] = fan_in_values(self.file, self.flow.name)
        return CompiledFlow(self.flow.name, module, text, routes, values)


def _try_before_router(node: AnyNode | None) -> bool:
    """True when a ``try`` section starts on the straight path from ``node`` (its ``on_error`` must be armed)."""
    while isinstance(node, (Call, TryEnd)):
        node = node.next
    return isinstance(node, TryStart)


def _all_nodes(entry: AnyNode) -> list[AnyNode]:
    from asya_cli.flow.graph import walk

    return walk(entry)


def _values_text(file: str, flow: str, values: dict[str, Any]) -> str:
    return (f"# generated by `asya flow compile {file}` (flow {flow}); do not edit\n"
            + yaml.safe_dump(values, sort_keys=False))


def fan_in_values(file: str, flow: str, env: dict[str, str] | None = None) -> str:
    """Values of the built-in fan-in actor: the parent carrier polls through retries until its group is complete."""
    values: dict[str, Any] = {
        "name": FAN_IN, "handler": FAN_IN_HANDLER, "handlerMode": "envelope", "concurrency": 4,
        "resiliency": {"policies": {"default": {
            "maxAttempts": 1000000, "backoff": "exponential", "initialInterval": "100ms", "maxInterval": "2s"}}},
    }
    if env:
        values["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    return _values_text(file, flow, values)


def compile_source(source: str, path: str) -> list[CompiledFlow]:
    """Compiles every flow function in ``source`` (the text of the file at ``path``).

    Raises:
        FlowCompileError: With file, line, column and what is allowed.
    """
    lines = source.splitlines()
    return [_Generator(flow, lines, Path(path).name).generate() for flow in parse_source(source, path)]


def compile_file(path: str | Path) -> list[CompiledFlow]:
    """Compiles the flow file at ``path``."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowCompileError(str(path), 1, 1, f"cannot read flow file: {exc.strerror}") from None
    return compile_source(source, str(path))


def write_compiled(flows: list[CompiledFlow], out_dir: Path) -> list[Path]:
    """Writes each flow's routers module, ``<flow>.routes.json`` and values files into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for flow in flows:
        files = {f"{flow.module}.py": flow.module_text,
                 f"{flow.name}.routes.json": json.dumps(flow.routes, indent=2) + "\n", **flow.values}
        for name, text in files.items():
            target = out_dir / name
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written
