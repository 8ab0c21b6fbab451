"""Runs the examples of a docs page the way a reader would: files written, ``asya dev`` started, commands typed.

A page marks its example files with a first line ``# file: NAME`` in a fenced block (python, yaml,
json, text). ``console`` blocks hold ``$ asya ...`` commands, each followed by the output it prints: a
JSON output line must be *contained* in the real one (every key shown has that value; lists have the
shown length), any other line must match, with ``...`` standing for any text. ``pycon`` blocks run as
doctests with the example folder importable.
"""

from __future__ import annotations

import doctest
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)


@dataclass
class Command:
    """One ``$ asya ...`` line and the output the page shows for it."""

    argv: list[str]
    expected: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class Page:
    """The runnable parts of one markdown page."""

    files: dict[str, str]
    commands: list[Command]
    doctests: list[tuple[int, str]]


def parse(path: Path) -> Page:
    """Extracts example files, console commands and doctests from a markdown page."""
    text = path.read_text()
    files: dict[str, str] = {}
    commands: list[Command] = []
    doctests: list[tuple[int, str]] = []
    for match in FENCE.finditer(text):
        info, body = match["info"].strip(), match["body"]
        line = text.count("\n", 0, match.start()) + 1
        first = body.splitlines()[0] if body else ""
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body.split("\n", 1)[1] if "\n" in body else ""
        elif info == "console":
            for offset, raw in enumerate(body.splitlines()):
                if raw.startswith("$ "):
                    argv = shlex.split(raw[2:])
                    assert argv[0] == "asya", f"{path}:{line}: console commands must start with asya"
                    commands.append(Command(argv[1:], line=line + offset + 1))
                elif raw.strip():
                    commands[-1].expected.append(raw)
        elif info == "pycon":
            doctests.append((line, body))
    return Page(files, commands, doctests)


def contains(actual: Any, expected: Any) -> bool:
    """True when ``expected`` is contained in ``actual`` (dict keys subset, lists same length, rest equal)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            contains(a, e) for a, e in zip(actual, expected))
    return actual == expected and type(actual) is type(expected)


def line_matches(actual: str, expected: str) -> bool:
    """One output line against the page's: JSON containment, else text with ``...`` wildcards."""
    try:
        wanted = json.loads(expected)
    except json.JSONDecodeError:
        pattern = ".*".join(re.escape(part) for part in expected.strip().split("..."))
        return re.fullmatch(pattern, actual.strip()) is not None
    try:
        return contains(json.loads(actual), wanted)
    except json.JSONDecodeError:
        return False


def run_command(command: Command, cwd: Path, state: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs ``asya <argv> --state-dir state`` in ``cwd`` (where the example files are)."""
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *command.argv, "--state-dir", str(state)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


READ_ONLY = ("status", "paused list", "paused show", "dlq list", "dlq show")


def run_and_check(command: Command, cwd: Path, state: Path, where: str, timeout: float = 60) -> None:
    """Runs a command and checks its output; a read-only one (``status``...) is re-run until the page's
    output shows up (the mesh is asynchronous: a status shown as final may still be running)."""
    read_only = " ".join(command.argv).startswith(READ_ONLY)
    deadline = time.monotonic() + timeout
    while True:
        done = run_command(command, cwd, state)
        try:
            check_output(command, done, where)
            return
        except AssertionError:
            if not read_only or time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def check_output(command: Command, done: subprocess.CompletedProcess, where: str) -> None:
    """Asserts every shown line appears, in order, in the real output."""
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    position = 0
    for wanted in command.expected:
        while position < len(lines) and not line_matches(lines[position], wanted):
            position += 1
        assert position < len(lines), (f"{where}: `asya {' '.join(command.argv)}` printed no line matching\n"
                                       f"  {wanted}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        position += 1


def run_doctest(source: str, name: str, folder: Path) -> doctest.TestResults:
    """Runs one ``pycon`` block as a doctest with ``folder`` importable."""
    sys.path.insert(0, str(folder))
    try:
        test = doctest.DocTestParser().get_doctest(source, {}, name, name, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        return runner.summarize(verbose=False)
    finally:
        sys.path.remove(str(folder))
