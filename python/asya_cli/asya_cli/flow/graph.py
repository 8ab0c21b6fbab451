"""The flow's control-flow graph: what the parser produces and the code generator and ``show`` consume.

Each node is one step of the flow at a source position. ``Call`` is an actor hop; ``Assign``,
``SetCounter``, ``Branch`` and ``FanOut`` are evaluated by generated router actors; ``TryStart`` /
``TryEnd`` mark a section of calls covered by an ``except`` branch (they cost no hop); ``End`` is
``return``. Expressions are kept as Python source already rewritten for the router (loop variables
read from ``counters``), so code generation only pastes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


class FlowCompileError(ValueError):
    """A construct the Flow DSL does not support, with its file, line and column (1-based)."""

    def __init__(self, path: str, line: int, col: int, message: str):
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path, self.line, self.col, self.message = path, line, col, message


@dataclass(eq=False)
class Node:
    """Base of every graph node: where it comes from in the flow source."""

    line: int
    col: int


@dataclass(eq=False)
class Call(Node):
    """``p = actor(p)``: one hop to ``actor``."""

    actor: str
    function: str
    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class Assign(Node):
    """``p["k"] = expr``: evaluated by a router."""

    target: str
    value: str
    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class SetCounter(Node):
    """A loop counter kept in the envelope (``for i in range``): ``counters["i"] = expr``."""

    name: str
    value: str
    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class Branch(Node):
    """``if``/``elif``/``while``/``for`` test: ``then`` when ``condition`` is true, else ``orelse``."""

    condition: str
    kind: str  # "if" | "while" | "for"
    then: Optional["AnyNode"] = None
    orelse: Optional["AnyNode"] = None


@dataclass(eq=False)
class FanOut(Node):
    """``p["k"] = [actor(x) for x in items]``: one child per item, joined by the fan-in actor into ``into``."""

    actor: str
    function: str
    items: str
    into: list[str]  # constant keys of the state where the ordered results go
    into_code: str
    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class Handler:
    """One ``except`` clause: the error type names it catches and where it continues."""

    errors: list[str]
    body: Optional["AnyNode"]
    line: int


@dataclass(eq=False)
class TryStart(Node):
    """Start of a ``try`` section: the calls until the matching ``TryEnd`` are covered by ``handlers``."""

    handlers: list[Handler] = field(default_factory=list)
    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class TryEnd(Node):
    """End of a ``try`` section."""

    next: Optional["AnyNode"] = None


@dataclass(eq=False)
class End(Node):
    """``return p``: the envelope goes on to happy-end."""


AnyNode = Union[Call, Assign, SetCounter, Branch, FanOut, TryStart, TryEnd, End]
LOGIC = (Assign, SetCounter, Branch, FanOut)  # nodes a router evaluates


@dataclass(eq=False)
class Flow:
    """One parsed flow function."""

    name: str
    state: str  # the parameter's name (``p``)
    path: str
    line: int
    entry: AnyNode
    actors: list[str]  # actor names in order of first appearance


def successors(node: AnyNode) -> list[AnyNode]:
    """The nodes reachable in one step, in a fixed order (then before else, body before handlers)."""
    if isinstance(node, Branch):
        return [n for n in (node.then, node.orelse) if n is not None]
    if isinstance(node, TryStart):
        return [n for n in [node.next, *(h.body for h in node.handlers)] if n is not None]
    nxt = getattr(node, "next", None)
    return [nxt] if nxt is not None else []


def walk(entry: AnyNode) -> list[AnyNode]:
    """Every node reachable from ``entry`` once, in a deterministic depth-first order."""
    seen: set[int] = set()
    order: list[AnyNode] = []
    stack = [entry]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(reversed(successors(node)))
    return order
