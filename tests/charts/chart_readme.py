"""Generates the values table of charts/<chart>/README.md from the `# --` comments in values.yaml.

helm-docs conventions, in a few lines of Python so that no extra tool is needed: a comment starting with
`# --` (continued by further `#` lines) documents the key right below it; the default is the key's value
in values.yaml. The README is `README.md.gotmpl` with `{{ values_table }}` replaced by the table.

    python -m tests.charts.chart_readme --write charts/asya-actor charts/asya-crew   # regenerate
    python -m tests.charts.chart_readme --check charts/asya-actor                    # exit 1 when stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+|'[^']+'|\"[^\"]+\"):(?:\s|$)")
MARKER = "{{ values_table }}"


@dataclass(frozen=True)
class Documented:
    """One documented values key."""

    path: tuple[str, ...]
    description: str
    default: object

    @property
    def key(self) -> str:
        return ".".join(self.path)


def documented_keys(values_file: Path) -> list[Documented]:
    """Keys of ``values_file`` that carry a ``# --`` comment, in file order.

    Raises:
        ValueError: a ``# --`` comment is not followed by a key.
    """
    text = values_file.read_text()
    values = yaml.safe_load(text) or {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    list_indent: int | None = None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        if not stripped:
            if pending is not None:
                raise ValueError(f"{values_file}:{number}: '# --' comment not followed by a key")
            continue
        if list_indent is not None:
            if indent > list_indent or (indent == list_indent and stripped.startswith("- ")):
                pending = None  # a comment inside a list item documents no values key
                continue
            list_indent = None
        if stripped.startswith("- "):
            list_indent = indent
            continue
        match = KEY_LINE.match(line)
        if not match:
            continue
        key = match.group("key").strip("'\"")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack) + (key,)
        stack.append((indent, key))
        if pending is not None:
            found.append(Documented(path, " ".join(pending), lookup(values, path)))
            pending = None
    return found


def lookup(values: dict, path: tuple[str, ...]) -> object:
    """The value at ``path`` in the parsed values."""
    node: object = values
    for key in path:
        node = node[key]  # type: ignore[index]
    return node


def leaves(values: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every leaf (scalar, list or empty map) of the parsed values."""
    if isinstance(values, dict) and values:
        return [leaf for key, value in values.items() for leaf in leaves(value, path + (key,))]
    return [path]


def type_of(value: object) -> str:
    """helm-docs style type name of a default."""
    return {bool: "bool", int: "int", float: "float", str: "string", dict: "object", list: "list",
            type(None): "null"}.get(type(value), type(value).__name__)


def table(chart: Path) -> str:
    """The markdown values table of ``chart``."""
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for item in documented_keys(chart / "values.yaml"):
        default = json.dumps(item.default, separators=(", ", ": "))
        description = item.description.replace("|", "\\|")
        rows.append(f"| `{item.key}` | {type_of(item.default)} | `{default}` | {description} |")
    return "\n".join(rows)


def render_readme(chart: Path) -> str:
    """README.md content of ``chart`` (its README.md.gotmpl with the values table filled in)."""
    template = (chart / "README.md.gotmpl").read_text()
    if MARKER not in template:
        raise ValueError(f"{chart}/README.md.gotmpl has no {MARKER} marker")
    return template.replace(MARKER, table(chart))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--write`` regenerates READMEs, ``--check`` reports stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is stale")
    parser.add_argument("charts", nargs="+", type=Path)
    args = parser.parse_args(argv)
    stale = []
    for chart in args.charts:
        content = render_readme(chart)
        readme = chart / "README.md"
        if args.write:
            readme.write_text(content)
        elif not readme.is_file() or readme.read_text() != content:
            stale.append(str(readme))
    for path in stale:
        print(f"stale: {path} (run `make charts-readme`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
