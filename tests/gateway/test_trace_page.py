"""The trace page ``/ui/envelopes/{id}`` in a real headless Chromium (Debian's, driven by Playwright).

A real dev mesh runs a generator handler that yields FLY chunks slowly: the page shows the tokens while
the envelope is still running, then the final record; a paused envelope is resumed from the page's form;
a failure shows its error with the traceback.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the browser fixture (skip on a laptop, failure under CI)
    expect = sync_playwright = None

from tests.gateway.test_mesh import ACTORS, HANDLERS
from tests.support.mesh import Mesh
from tests.support.require import require, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed (ci/system-packages.txt)")
    require(sync_playwright is not None, "playwright (Python package) is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, backend):
    tmp = tmp_path_factory.mktemp("trace")
    actors = [*ACTORS, {"name": "broken", "handler": "gw_handlers.split",
                        "resiliency": {"policies": {"default": {"maxAttempts": 1}}}}]
    mesh = Mesh(tmp, actors, env={"ASYA_STATUS_DB": backend.location} if backend.name == "postgres" else None)
    (mesh.values_dir / HANDLERS.name).write_text(HANDLERS.read_text())
    mesh.start()
    try:
        wait_for(lambda: (mesh.state / "gateway.url").exists(), 60, 0.1, "the dev gateway's URL")
        mesh.url = (mesh.state / "gateway.url").read_text()
        yield mesh
    finally:
        mesh.stop()


def submit(mesh, route, payload) -> str:
    response = httpx.post(f"{mesh.url}/envelopes", json={"route": route, "payload": payload}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def text_of(page, selector: str) -> str:
    return page.locator(selector).text_content() or ""


def test_tokens_appear_on_the_page_before_the_envelope_finishes(mesh, browser, tmp_path):
    words = [f"token{i}" for i in range(20)]
    envelope_id = submit(mesh, ["words"], {"text": " ".join(words), "delay": 0.4})
    page = browser.new_page()
    try:
        page.goto(f"{mesh.url}/ui/envelopes/{envelope_id}")
        expect(page.locator("#fly")).to_contain_text("token1 ", timeout=30000)
        partial, status = text_of(page, "#fly"), text_of(page, "#status")
        assert status in ("running", "pending"), f"tokens only showed after the end ({status})"
        assert partial.startswith("token0 token1 ") and not partial.startswith(" ".join(words))
        page.screenshot(path=str(tmp_path / "streaming.png"))
        expect(page.locator("#status")).to_have_text("succeeded", timeout=60000)
        assert text_of(page, "#fly") == " ".join(words) + " "
        hops = page.locator("#hops tr").all_text_contents()
        assert any("running" in h and "words" in h for h in hops)
        assert '"words": 20' in text_of(page, "#record")
        page.reload()  # a finished envelope: its history replays, the final status stays
        expect(page.locator("#fly")).to_have_text(" ".join(words) + " ", timeout=30000)
        assert text_of(page, "#status") == "succeeded"
    finally:
        page.close()


def test_a_paused_envelope_is_resumed_from_the_page(mesh, browser):
    envelope_id = submit(mesh, ["approve", "publish"], {"draft": "from the page"})
    page = browser.new_page()
    try:
        page.goto(f"{mesh.url}/ui/envelopes/{envelope_id}")
        expect(page.locator("#pause")).to_be_visible(timeout=30000)
        assert text_of(page, "#pause-prompt") == "Approve the draft?"
        page.fill("#pause-input", '{"approved": "yes"}')
        page.click("#resume")
        expect(page.locator("#resume-result")).to_contain_text("boolean", timeout=15000)
        page.fill("#pause-input", '{"approved": true}')
        page.click("#resume")
        expect(page.locator("#status")).to_have_text("succeeded", timeout=60000)
        assert '"published": true' in text_of(page, "#record")
    finally:
        page.close()


def test_a_failure_shows_its_error_and_traceback(mesh, browser):
    envelope_id = submit(mesh, ["broken"], {"no": "n"})
    page = browser.new_page()
    try:
        page.goto(f"{mesh.url}/ui/envelopes/{envelope_id}")
        expect(page.locator("#status")).to_have_text("failed", timeout=60000)
        error = text_of(page, "#error")
        assert "broken: KeyError" in error and "Traceback" in error and "gw_handlers.py" in error
    finally:
        page.close()
