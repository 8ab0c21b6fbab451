"""The ``asya flow compile|show`` verbs and what ``asya dev`` / ``asya send --flow`` need from flows.

``asya dev flow.py actors/*.yaml`` compiles the flow file into ``<state>/flows/`` (routers module,
values files, ``<flow>.routes.json``) and runs the generated routers (and the fan-in) beside the
actors; ``asya send --flow NAME`` reads the entry route from there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from asya_cli.common import CliError
from asya_cli.flow.codegen import FAN_IN, compile_file, fan_in_values, write_compiled
from asya_cli.flow.graph import FlowCompileError
from asya_cli.flow.mermaid import to_mermaid
from asya_cli.flow.parse import parse_source

FLOWS_DIR = "flows"


def cmd_compile(args: argparse.Namespace, environ: dict[str, str]) -> int:
    try:
        flows = compile_file(args.file)
    except FlowCompileError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.file).resolve().parent / "compiled"
    for path in write_compiled(flows, out):
        print(path)
    return 0


def cmd_show(args: argparse.Namespace, environ: dict[str, str]) -> int:
    try:
        source = Path(args.file).read_text(encoding="utf-8")
        flows = parse_source(source, args.file)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    except FlowCompileError as exc:
        raise CliError(str(exc)) from None
    chosen = [f for f in flows if args.flow in (None, f.name)]
    if not chosen:
        raise CliError(f"no flow {args.flow!r} in {args.file} (flows: {', '.join(f.name for f in flows)})")
    print("\n".join(to_mermaid(f) for f in chosen), end="")
    return 0


def add_parser(sub: Any) -> None:
    """Adds ``asya flow compile`` and ``asya flow show``."""
    flow = sub.add_parser("flow", help="compile or draw a Flow DSL file (docs/flows.md)")
    verbs = flow.add_subparsers(dest="flow_command", required=True)
    comp = verbs.add_parser("compile", help="write the routers module, routes and values files of every flow")
    comp.add_argument("file", help="flow file (plain Python)")
    comp.add_argument("--out", "-o", help="output directory (default: compiled/ next to the flow file)")
    comp.set_defaults(func=cmd_compile)
    show = verbs.add_parser("show", help="print the flow graph as Mermaid text")
    show.add_argument("file", help="flow file (plain Python)")
    show.add_argument("--flow", help="only this flow function")
    show.set_defaults(func=cmd_show)


def prepare_dev_flows(flow_files: list[str], actor_names: list[str], state_dir: Path) -> list[Path]:
    """Compiles flow files for ``asya dev`` into ``<state>/flows``; returns the values files to run.

    Raises:
        CliError: A compile error, or a flow calls an actor with no values file among ``actor_names``.
    """
    out = state_dir / FLOWS_DIR
    files: list[Path] = []
    needs_fan_in = False
    for flow_file in flow_files:
        try:
            flows = compile_file(flow_file)
        except FlowCompileError as exc:
            raise CliError(str(exc)) from None
        for flow in flows:
            missing = [a for a in flow.routes["actors"] if a not in actor_names]
            if missing:
                raise CliError(f"flow {flow.name} ({flow_file}) calls actors with no values file: "
                               f"{', '.join(missing)} (pass e.g. actors/{missing[0]}.yaml)")
            needs_fan_in = needs_fan_in or flow.routes["fan_in"]
            flow.values.pop(f"{FAN_IN}.yaml", None)
        files += [p for p in write_compiled(flows, out) if p.suffix == ".yaml"]
    if needs_fan_in:
        path = out / f"{FAN_IN}.yaml"
        path.write_text(fan_in_values("asya dev", "all flows", {"ASYA_STATUS_DB": str(state_dir / "status.sqlite3")}))
        files.append(path)
    return files


def route_of(args: argparse.Namespace) -> list[str]:
    """The route ``asya send`` starts an envelope on: ``--route a,b,c`` or the entry of ``--flow NAME``."""
    if bool(getattr(args, "flow", None)) == bool(args.route):
        raise CliError("give exactly one of --route and --flow")
    if args.flow:
        return list(flow_entry(Path(args.state_dir), args.flow)["route"])
    return [a.strip() for a in args.route.split(",") if a.strip()]


def flow_entry(state_dir: Path, name: str) -> dict[str, Any]:
    """The entry of compiled flow ``name`` in the dev mesh's state dir (``{"route": [...]}``)."""
    path = state_dir / FLOWS_DIR / f"{name}.routes.json"
    if not path.exists():
        known = sorted(p.name[: -len(".routes.json")] for p in (state_dir / FLOWS_DIR).glob("*.routes.json"))
        raise CliError(f"no compiled flow {name!r} in {state_dir / FLOWS_DIR} (run `asya dev flow.py actors/*.yaml` "
                       f"first; known flows: {', '.join(known) or 'none'})")
    return json.loads(path.read_text())["entry"]
