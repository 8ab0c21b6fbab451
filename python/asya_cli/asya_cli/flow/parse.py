"""Parses a flow file (plain Python) into the control-flow graph of :mod:`.graph`, rejecting the rest.

Only what the mesh can express without an engine is accepted: actor calls ``p = actor(p)``,
``if``/``elif``/``else``, ``while`` with a counter bound kept in the state, ``for`` over a literal
``range``, ``return p``, ``try``/``except Type:`` around actor calls, state assignments, and the
fan-out / fan-in comprehension ``parts = [actor(x) for x in p["items"]]`` followed by
``p["k"] = parts``. Anything else raises :class:`FlowCompileError` at its line and column with what
is allowed instead.
"""

from __future__ import annotations

import ast
import re
from typing import Optional

from asya_cli.flow.graph import (AnyNode, Assign, Branch, Call, End, FanOut, Flow, FlowCompileError, Handler,
                                 SetCounter, TryEnd, TryStart, walk)

BUILTINS = ("len", "range")
RESERVED = ("envelope", "counters", "items", "len", "range")
ACTOR_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ALLOWED_STATEMENTS = ("`p = actor(p)`, `p[\"k\"] = expression`, `p[\"k\"] += n`, `if`/`elif`/`else`, "
                      "`while <counter bound>:`, `for i in range(...)`, `try`/`except Type:`, "
                      "`parts = [actor(x) for x in p[\"items\"]]` then `p[\"k\"] = parts`, `return p`, `pass`")
ALLOWED_EXPRESSIONS = ("comparisons, `and`/`or`/`not`, `in`, `len(...)`, `+ - * // %`, literals, "
                       "`p[...]` and `for` loop variables")


def actor_name(function: str) -> str:
    """The actor a flow calls by function name: ``human_review`` -> ``human-review``."""
    return function.replace("_", "-")


class _Falloff(End):
    """Marker continuation: reaching it means the function can end without ``return p``."""


class _Parser:
    def __init__(self, path: str, fn: ast.FunctionDef):
        self.path, self.fn = path, fn
        self.loop_vars: list[str] = []
        self.actors: list[str] = []

    def error(self, node: ast.AST, message: str) -> FlowCompileError:
        return FlowCompileError(self.path, getattr(node, "lineno", self.fn.lineno),
                                getattr(node, "col_offset", 0) + 1, message)

    # -- the function -------------------------------------------------------------------
    def parse(self) -> Flow:
        fn = self.fn
        args = fn.args
        if (fn.decorator_list or len(args.args) != 1 or args.posonlyargs or args.kwonlyargs or args.vararg
                or args.kwarg or args.defaults):
            raise self.error(fn, f"flow {fn.name!r} must take exactly one parameter, the state dict: "
                                 f"`def {fn.name}(p):` (no decorators, defaults or *args)")
        self.state = args.args[0].arg
        if self.state in RESERVED:
            raise self.error(fn, f"the state parameter may not be called {self.state!r}; use `p`")
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # docstring
        falloff = _Falloff(fn.lineno, fn.col_offset)
        entry = self.block(body, falloff)
        for node in walk(entry):
            if isinstance(node, _Falloff):
                last = body[-1] if body else fn
                raise self.error(last, f"flow {fn.name!r} can reach its end without `return {self.state}`; "
                                       f"end every path with `return {self.state}`")
        if not self.actors:
            raise self.error(fn, f"flow {fn.name!r} calls no actor")
        return Flow(fn.name, self.state, self.path, fn.lineno, entry, list(self.actors))

    def block(self, stmts: list[ast.stmt], cont: AnyNode) -> AnyNode:
        stmts = list(stmts)
        node = cont
        index = len(stmts) - 1
        while index >= 0:
            stmt = stmts[index]
            prev = stmts[index - 1] if index >= 1 else None
            if isinstance(prev, ast.Assign) and self._is_comprehension_assign(prev):
                node = self.fan_out(prev, stmt, node)
                index -= 2
                continue
            node = self.statement(stmt, node)
            index -= 1
        return node

    # -- statements ---------------------------------------------------------------------
    def statement(self, stmt: ast.stmt, cont: AnyNode) -> AnyNode:
        if isinstance(stmt, ast.Pass):
            return cont
        if isinstance(stmt, ast.Return):
            return self.return_(stmt)
        if isinstance(stmt, ast.Assign):
            return self.assign(stmt, cont)
        if isinstance(stmt, ast.AugAssign):
            return self.aug_assign(stmt, cont)
        if isinstance(stmt, ast.If):
            cond = self.expr(stmt.test)
            return Branch(stmt.lineno, stmt.col_offset + 1, cond, "if",
                          self.block(stmt.body, cont), self.block(stmt.orelse, cont))
        if isinstance(stmt, ast.While):
            return self.while_(stmt, cont)
        if isinstance(stmt, ast.For):
            return self.for_(stmt, cont)
        if isinstance(stmt, ast.Try):
            return self.try_(stmt, cont)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            raise self.error(stmt, f"an actor's result must be kept: write `{self.state} = "
                                   f"{ast.unparse(stmt.value.func)}({self.state})`")
        kind = type(stmt).__name__
        raise self.error(stmt, f"`{kind}` is not supported in a flow; allowed: {ALLOWED_STATEMENTS}")

    def return_(self, stmt: ast.Return) -> AnyNode:
        end = End(stmt.lineno, stmt.col_offset + 1)
        value = stmt.value
        if isinstance(value, ast.Name) and value.id == self.state:
            return end
        if isinstance(value, ast.Call):
            return self.call(value, end, stmt)
        raise self.error(stmt, f"a flow returns its state: `return {self.state}` or `return actor({self.state})`")

    def call(self, value: ast.Call, cont: AnyNode, stmt: ast.stmt) -> Call:
        if not isinstance(value.func, ast.Name):
            raise self.error(value, f"call actors by plain name: `{self.state} = actor({self.state})`")
        function = value.func.id
        if function in BUILTINS:
            raise self.error(value, f"`{function}(...)` is only allowed inside an expression")
        if value.keywords or len(value.args) != 1 or not (isinstance(value.args[0], ast.Name)
                                                          and value.args[0].id == self.state):
            raise self.error(value, f"an actor takes the whole state: `{self.state} = {function}({self.state})`")
        return Call(stmt.lineno, value.col_offset + 1, self.actor(function, value), function, cont)

    def actor(self, function: str, node: ast.AST) -> str:
        name = actor_name(function)
        if not ACTOR_NAME.match(name) or len(name) > 40:
            raise self.error(node, f"actor function {function!r} maps to actor {name!r}, which is not a valid actor "
                                   "name (lowercase letters, digits and _, at most 40 characters)")
        if name in ("happy-end", "error-end", "fan-in") or name.endswith("-dlq"):
            raise self.error(node, f"{name!r} is a reserved actor name")
        if name not in self.actors:
            self.actors.append(name)
        return name

    def assign(self, stmt: ast.Assign, cont: AnyNode) -> AnyNode:
        if len(stmt.targets) != 1:
            raise self.error(stmt, "assign one target at a time")
        target, value = stmt.targets[0], stmt.value
        if isinstance(target, ast.Name) and target.id == self.state:
            if isinstance(value, ast.Call):
                return self.call(value, cont, stmt)
            raise self.error(stmt, f"`{self.state}` may only be replaced by an actor's result: "
                                   f"`{self.state} = actor({self.state})`")
        if isinstance(value, ast.ListComp):
            if self._state_target(target, stmt) is not None:
                return self.fan_out(stmt, None, cont)
        code = self._state_target(target, stmt)
        if code is None:
            raise self.error(stmt, f"only the state can be assigned: `{self.state}[\"key\"] = expression` "
                                   "(a fan-out result goes through `parts = [actor(x) for x in ...]`)")
        return Assign(stmt.lineno, stmt.col_offset + 1, code, self.expr(value), cont)

    def aug_assign(self, stmt: ast.AugAssign, cont: AnyNode) -> AnyNode:
        code = self._state_target(stmt.target, stmt)
        if code is None or not isinstance(stmt.op, (ast.Add, ast.Sub)):
            raise self.error(stmt, f"only `{self.state}[\"key\"] += n` / `-= n` are allowed")
        op = "+" if isinstance(stmt.op, ast.Add) else "-"
        return Assign(stmt.lineno, stmt.col_offset + 1, code, f"{code} {op} ({self.expr(stmt.value)})", cont)

    def _state_target(self, target: ast.expr, stmt: ast.stmt) -> Optional[str]:
        """Source of a ``p[...]`` assignment target, or None when the target is not the state."""
        node = target
        while isinstance(node, ast.Subscript):
            node = node.value
        if not (isinstance(node, ast.Name) and node.id == self.state) or node is target:
            return None
        return self.expr(target)

    def _into_keys(self, target: ast.expr, stmt: ast.stmt) -> list[str]:
        keys: list[str] = []
        node = target
        while isinstance(node, ast.Subscript):
            if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                raise self.error(node, f"a fan-in result goes to constant keys: `{self.state}[\"key\"] = parts`")
            keys.insert(0, node.slice.value)
            node = node.value
        if not (isinstance(node, ast.Name) and node.id == self.state) or not keys:
            raise self.error(stmt, f"store a fan-in result in the state: `{self.state}[\"key\"] = parts`")
        return keys

    # -- fan-out / fan-in -----------------------------------------------------------------
    def _is_comprehension_assign(self, stmt: ast.Assign) -> bool:
        return (len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id != self.state and isinstance(stmt.value, ast.ListComp))

    def fan_out(self, comp_stmt: ast.Assign, use: Optional[ast.stmt], cont: AnyNode) -> AnyNode:
        comp = comp_stmt.value
        assert isinstance(comp, ast.ListComp)
        if use is None:  # p["k"] = [actor(x) for x in ...]
            target = comp_stmt.targets[0]
        else:
            name = comp_stmt.targets[0].id
            if not (isinstance(use, ast.Assign) and len(use.targets) == 1 and isinstance(use.value, ast.Name)
                    and use.value.id == name):
                raise self.error(use, f"a fan-out result must be stored right away: `{self.state}[\"key\"] = {name}`")
            target = use.targets[0]
        into = self._into_keys(target, comp_stmt)
        if len(comp.generators) != 1 or comp.generators[0].ifs or comp.generators[0].is_async:
            raise self.error(comp, "a fan-out has one `for` and no `if`: `[actor(x) for x in p[\"items\"]]`")
        gen = comp.generators[0]
        if not isinstance(gen.target, ast.Name):
            raise self.error(gen.target, "a fan-out loops over one name: `for x in ...`")
        item = gen.target.id
        elt = comp.elt
        if not (isinstance(elt, ast.Call) and isinstance(elt.func, ast.Name) and elt.func.id not in BUILTINS
                and len(elt.args) == 1 and not elt.keywords and isinstance(elt.args[0], ast.Name)
                and elt.args[0].id == item):
            raise self.error(elt, f"a fan-out calls one actor on each item: `[actor({item}) for {item} in ...]`")
        actor = self.actor(elt.func.id, elt)
        into_code = self.state + "".join(f"[{k!r}]" for k in into)
        return FanOut(comp_stmt.lineno, comp.col_offset + 1, actor, elt.func.id, self.expr(gen.iter), into,
                      into_code, cont)

    # -- loops ----------------------------------------------------------------------------
    def while_(self, stmt: ast.While, cont: AnyNode) -> AnyNode:
        if stmt.orelse:
            raise self.error(stmt, "`while ... else` is not supported")
        counter = self._bound_counter(stmt.test)
        if counter is None or not any(self._increments(s, counter) for s in stmt.body):
            raise self.error(stmt, "a `while` loop needs a bound the compiler can see: a counter kept in the state, "
                                   f"e.g. `while {self.state}[\"round\"] < 5 and ...:` with "
                                   f"`{self.state}[\"round\"] += 1` in the loop body")
        self._no_break(stmt.body)
        test = Branch(stmt.lineno, stmt.col_offset + 1, self.expr(stmt.test), "while")
        test.then = self.block(stmt.body, test)
        test.orelse = cont
        return test

    def _bound_counter(self, test: ast.expr) -> Optional[str]:
        parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
        for part in parts:
            if isinstance(part, ast.Compare) and len(part.ops) == 1:
                left, op, right = part.left, part.ops[0], part.comparators[0]
                if isinstance(op, (ast.Lt, ast.LtE)) and self._int_const(right) and isinstance(left, ast.Subscript):
                    return ast.unparse(left)
                if isinstance(op, (ast.Gt, ast.GtE)) and self._int_const(left) and isinstance(right, ast.Subscript):
                    return ast.unparse(right)
        return None

    @staticmethod
    def _int_const(node: ast.expr) -> bool:
        return isinstance(node, ast.Constant) and type(node.value) is int

    def _increments(self, stmt: ast.stmt, counter: str) -> bool:
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add) and ast.unparse(stmt.target) == counter:
            return self._int_const(stmt.value) and stmt.value.value > 0
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and ast.unparse(stmt.targets[0]) == counter:
            value = stmt.value
            return (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add) and ast.unparse(value.left) == counter
                    and self._int_const(value.right) and value.right.value > 0)
        return False

    def _no_break(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, (ast.Break, ast.Continue)):
                    raise self.error(node, f"`{type(node).__name__.lower()}` is not supported; "
                                           "loop conditions decide when a loop ends")

    def for_(self, stmt: ast.For, cont: AnyNode) -> AnyNode:
        it = stmt.iter
        if stmt.orelse or not isinstance(stmt.target, ast.Name):
            raise self.error(stmt, "write `for i in range(...)` with one loop variable and no `else`")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and 1 <= len(it.args) <= 3 and not it.keywords and all(self._int_const(a) or (
                    isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub) and self._int_const(a.operand))
                    for a in it.args)):
            raise self.error(it, "`for` loops run over a bounded range with literal bounds: `for i in range(3)`, "
                                 "`range(1, 4)`, `range(0, 10, 2)` (fan out over a list with a comprehension)")
        bounds = [ast.literal_eval(a) for a in it.args]
        start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds[:2], bounds[2] if len(bounds) == 3 else 1)
        if step == 0:
            raise self.error(it, "range() step must not be zero")
        name = stmt.target.id
        if name in (self.state, *RESERVED) or name in self.loop_vars:
            raise self.error(stmt.target, f"loop variable {name!r} clashes with the state or an outer loop")
        self._no_break(stmt.body)
        ref = f"counters[{name!r}]"
        test = Branch(stmt.lineno, stmt.col_offset + 1, f"{ref} {'<' if step > 0 else '>'} {stop}", "for")
        self.loop_vars.append(name)
        try:
            step_node = SetCounter(stmt.lineno, stmt.col_offset + 1, name, f"{ref} + {step}", test)
            test.then = self.block(stmt.body, step_node)
        finally:
            self.loop_vars.pop()
        test.orelse = cont
        return SetCounter(stmt.lineno, stmt.col_offset + 1, name, repr(start), test)

    # -- try / except ---------------------------------------------------------------------
    def try_(self, stmt: ast.Try, cont: AnyNode) -> AnyNode:
        if stmt.orelse or stmt.finalbody or not stmt.handlers:
            raise self.error(stmt, "only `try:` with `except Type:` clauses is supported (no `else`/`finally`)")
        handlers = []
        for handler in stmt.handlers:
            if handler.type is None:
                raise self.error(handler, "name the error type: `except ValueError:` (`except Exception:` "
                                          "catches every error)")
            if handler.name:
                raise self.error(handler, f"`except ... as {handler.name}` is not supported; the except "
                                          "branch continues with the state the failed actor received")
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            names = []
            for t in types:
                if isinstance(t, ast.Name):
                    names.append(t.id)
                elif isinstance(t, ast.Attribute):
                    names.append(ast.unparse(t))
                else:
                    raise self.error(t, "an except clause names error classes: `except (KeyError, mymod.Bad):`")
            handlers.append(Handler(names, self.block(handler.body, cont), handler.lineno))
        end = TryEnd(stmt.lineno, stmt.col_offset + 1, cont)
        node: AnyNode = end
        for inner in reversed(stmt.body):
            if not (isinstance(inner, ast.Assign) and isinstance(inner.value, ast.Call)
                    and len(inner.targets) == 1 and isinstance(inner.targets[0], ast.Name)
                    and inner.targets[0].id == self.state):
                if isinstance(inner, ast.Pass):
                    continue
                raise self.error(inner, f"a `try` body holds actor calls only: `{self.state} = actor({self.state})`")
            node = self.call(inner.value, node, inner)
        if node is end:
            raise self.error(stmt, "a `try` body needs at least one actor call")
        return TryStart(stmt.lineno, stmt.col_offset + 1, handlers, node)

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: ast.expr) -> str:
        """Checks an expression against the allowed subset; returns router source for it."""
        self._check_expr(node)
        return ast.unparse(_RewriteLoopVars(self.loop_vars).visit(_copy(node)))

    def _check_expr(self, node: ast.AST) -> None:
        ok = (ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Subscript, ast.Name, ast.List,
              ast.Tuple, ast.Set, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.Add, ast.Sub, ast.Mult,
              ast.FloorDiv, ast.Mod, ast.Div, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In,
              ast.NotIn, ast.Is, ast.IsNot, ast.Call, ast.Slice, ast.Store)
        for sub in ast.walk(node):
            if not isinstance(sub, ok):
                raise self.error(sub if hasattr(sub, "lineno") else node,
                                 f"`{ast.unparse(sub) if isinstance(sub, ast.expr) else type(sub).__name__}` is "
                                 f"not allowed in a flow expression; allowed: {ALLOWED_EXPRESSIONS}")
            if isinstance(sub, ast.Call):
                if not (isinstance(sub.func, ast.Name) and sub.func.id == "len" and len(sub.args) == 1
                        and not sub.keywords):
                    raise self.error(sub, f"`{ast.unparse(sub)}`: only `len(...)` may be called in an expression; "
                                          f"actors are called as statements: `{self.state} = actor({self.state})`")
            elif isinstance(sub, ast.Name) and sub.id not in (self.state, "len", *self.loop_vars):
                raise self.error(sub, f"unknown name {sub.id!r}: expressions read the state `{self.state}`, "
                                      "literals and the variables of enclosing `for` loops")
            elif isinstance(sub, ast.Constant) and not isinstance(sub.value, (str, int, float, bool, type(None))):
                raise self.error(sub, "only str, int, float, bool and None literals are allowed")


class _RewriteLoopVars(ast.NodeTransformer):
    def __init__(self, names: list[str]):
        self.names = set(names)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.Subscript(ast.Name("counters", ast.Load()), ast.Constant(node.id), ast.Load())
        return node


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


def parse_source(source: str, path: str) -> list[Flow]:
    """Parses every flow function of a flow file.

    Raises:
        FlowCompileError: A syntax error or an unsupported construct (file, line, column, what is allowed).
    """
    try:
        module = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise FlowCompileError(path, exc.lineno or 1, exc.offset or 1, f"syntax error: {exc.msg}") from None
    flows = []
    for index, stmt in enumerate(module.body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if index == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.FunctionDef):
            flows.append(_Parser(path, stmt).parse())
            continue
        raise FlowCompileError(path, stmt.lineno, stmt.col_offset + 1,
                               f"a flow file holds only a docstring, imports and flow functions, not "
                               f"`{type(stmt).__name__}`")
    if not flows:
        raise FlowCompileError(path, 1, 1, "no flow function found (define `def my_flow(p): ...`)")
    names = [f.name for f in flows]
    for flow in flows:
        if names.count(flow.name) > 1:
            raise FlowCompileError(path, flow.line, 1, f"flow {flow.name!r} is defined twice")
    return flows
