"""``asya flow show``: a flow's graph as Mermaid text (paste into any Markdown that renders Mermaid).

Actor calls are boxes, decisions diamonds, state updates parallelograms, a fan-out a subroutine box
joined by the ``fan-in`` actor; an ``except`` branch is a dotted edge labelled with its error types.
"""

from __future__ import annotations

import re

from asya_cli.flow.graph import AnyNode, Assign, Branch, Call, End, FanOut, Flow, SetCounter, TryEnd, TryStart, walk


def _label(text: str) -> str:
    text = re.sub(r"counters\['([A-Za-z_][A-Za-z0-9_]*)'\]", r"\1", text)  # loop variables as written
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(flow: Flow) -> str:
    """Mermaid ``flowchart TD`` text for ``flow``; node ids follow a fixed traversal, so output is stable."""
    nodes = walk(flow.entry)
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD", f"    start(({_label(flow.name)}))"]
    edges: list[str] = []

    def target(node: AnyNode | None) -> str:
        while isinstance(node, (TryStart, TryEnd)):  # try markers cost nothing: draw the edge to the call
            node = node.next
        return ids[id(node)] if node is not None else "done"

    covered: dict[int, list[TryStart]] = {}
    for node in nodes:
        if isinstance(node, TryStart):
            inner = node.next
            while isinstance(inner, Call):
                covered.setdefault(id(inner), []).append(node)
                inner = inner.next
    edges.append(f"    start --> {target(flow.entry)}")
    for node in nodes:
        nid = ids[id(node)]
        if isinstance(node, Call):
            lines.append(f"    {nid}[{_label(node.actor)}]")
            edges.append(f"    {nid} --> {target(node.next)}")
            for try_node in covered.get(id(node), []):
                for handler in try_node.handlers:
                    edges.append(f"    {nid} -. {_label(', '.join(handler.errors))} .-> {target(handler.body)}")
        elif isinstance(node, Branch):
            lines.append(f"    {nid}{{{_label(node.condition)}}}")
            edges.append(f"    {nid} -- yes --> {target(node.then)}")
            edges.append(f"    {nid} -- no --> {target(node.orelse)}")
        elif isinstance(node, Assign):
            lines.append(f"    {nid}[/{_label(f'{node.target} = {node.value}')}/]")
            edges.append(f"    {nid} --> {target(node.next)}")
        elif isinstance(node, SetCounter):
            lines.append(f"    {nid}[/{_label(f'{node.name} = {node.value}')}/]")
            edges.append(f"    {nid} --> {target(node.next)}")
        elif isinstance(node, FanOut):
            lines.append(f"    {nid}[[{_label(f'{node.actor} for each item of {node.items}')}]]")
            lines.append(f"    {nid}_join[{_label(f'fan-in into {node.into_code}')}]")
            edges.append(f"    {nid} ==> {nid}_join")
            edges.append(f"    {nid}_join --> {target(node.next)}")
        elif isinstance(node, End):
            lines.append(f"    {nid}(({_label('return')}))")
    return "\n".join(lines + edges) + "\n"
