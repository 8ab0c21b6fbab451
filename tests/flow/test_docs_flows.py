"""docs/flows.md, run as a reader would: its files, `asya dev review.py ...`, its `asya send --flow` commands;
the router it shows is the one the compiler generates, and the flow called in-process agrees with the mesh."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from asya_cli.flow import compile_file
from tests.first_day import docs_runner
from tests.support.mesh import Mesh

PAGE = Path(__file__).resolve().parents[2] / "docs" / "flows.md"


@pytest.fixture(scope="module")
def docs_mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flowdocs")
    examples = folder / "examples"
    examples.mkdir()
    page = docs_runner.parse(PAGE)
    for filename, body in page.files.items():
        (examples / filename).write_text(body)
    files = [examples / "review.py", *sorted(examples.glob("*.yaml"))]
    mesh = Mesh(folder, [], files=files).start(timeout=180)
    yield mesh, examples, page
    mesh.stop()


def test_console_examples_print_what_the_page_shows(docs_mesh):
    mesh, examples, page = docs_mesh
    assert page.commands, "docs/flows.md has no runnable commands"
    for command in page.commands:
        done = docs_runner.run_command(command, examples, mesh.state)
        docs_runner.check_output(command, done, f"docs/flows.md:{command.line}")
        shown = json.loads(command.expected[0])
        payload = json.loads(command.argv[command.argv.index("--payload") + 1])
        assert json.loads(done.stdout)["result"] == _in_process(examples, payload) == {
            **shown["result"]}, "the mesh, the in-process call and the page disagree"


def _in_process(examples: Path, payload: dict) -> dict:
    actors = _load(examples / "review_actors.py")
    namespace = {name: getattr(actors, name) for name in ("validate", "human_review", "store")}
    exec(compile((examples / "review.py").read_text(), "review.py", "exec"), namespace)  # noqa: S102 - the doc's own file
    return namespace["review_flow"](dict(payload))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_router_shown_is_the_generated_one(tmp_path):
    page = docs_runner.parse(PAGE)
    (tmp_path / "review.py").write_text(page.files["review.py"])
    (flow,) = compile_file(tmp_path / "review.py")
    shown = re.search(r"^```\n(def router_1\(envelope\):\n.*?)^```", PAGE.read_text(), re.S | re.M).group(1)
    assert shown in flow.module_text
    assert '"route": [\n      "validate",\n      "review-flow-router-1"' in json.dumps(flow.routes, indent=2)
