"""docs/handlers.md and docs/dev-loop.md, run as a reader would: their files, `asya dev`, their commands.

Every ``# file:`` block of the pages is written into one folder, one ``asya dev`` runs all their actors,
and every ``$ asya ...`` line of a ``console`` block is run in that folder; its output must show what the
page shows. The pages' ``pycon`` blocks run as doctests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.first_day import docs_runner
from tests.support.mesh import Mesh

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["handlers.md", "dev-loop.md"]


@pytest.fixture(scope="module")
def docs_mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    examples = folder / "examples"
    examples.mkdir()
    pages = {}
    for name in PAGES:
        page = docs_runner.parse(DOCS / name)
        for filename, body in page.files.items():
            assert not (examples / filename).exists(), f"{name}: example file {filename} defined twice"
            (examples / filename).write_text(body)
        pages[name] = page
    actors = sorted(examples.glob("*.yaml"))
    mesh = Mesh(folder, [], files=actors).start(timeout=120)
    yield mesh, examples, pages
    mesh.stop()


def test_pages_have_examples():
    for name in PAGES:
        page = docs_runner.parse(DOCS / name)
        assert page.files and page.commands, f"{name} has no runnable examples"
        assert all(c.expected for c in page.commands if c.argv[0] == "send"), f"{name}: a send shows no output"


@pytest.mark.parametrize("name", PAGES)
def test_console_examples_print_what_the_page_shows(docs_mesh, name):
    mesh, examples, pages = docs_mesh
    for command in pages[name].commands:
        docs_runner.run_and_check(command, examples, mesh.state, f"docs/{name}:{command.line}")


@pytest.mark.parametrize("name", PAGES)
def test_doctests_pass(docs_mesh, name):
    _, examples, pages = docs_mesh
    for line, source in pages[name].doctests:
        result = docs_runner.run_doctest(source, f"docs/{name}:{line}", examples)
        assert result.failed == 0 and result.attempted > 0, f"docs/{name}:{line}: doctest failed"
