"""Web UI fixtures: a real ``nfo serve`` on loopback (one per module) and Debian's
Chromium driven by Playwright (one browser per module, a fresh context per test).
``NFO_UI_DOCS=1`` refreshes the screenshots in docs/ui/ from the run.

Without /usr/bin/chromium (``tools/bootstrap`` installs it) these tests are skipped with
the reason; CI always has it.  Screenshots of the main views go to
``tests/ui/artefacts/`` (docs/ui.md shows copies of the main ones).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fuzz.server import PASSWORD, ServerProcess

CHROMIUM = os.environ.get("NFO_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(__file__).parent / "artefacts"
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "ui"
DOCS = frozenset({"login", "instances", "instances-retrying", "configuration", "paged-list",
                  "history", "action-output"})
"""The screenshots docs/ui.md shows."""

if not Path(CHROMIUM).exists():  # pragma: no cover - CI installs it
    pytest.skip(f"no Chromium at {CHROMIUM} (tools/bootstrap installs Debian's)",
                allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"]}
"""The axe-core rules of WCAG 2.0 and 2.1, levels A and AA."""


@pytest.fixture(scope="module")
def nfo_server() -> Iterator[ServerProcess]:
    with ServerProcess(log_name="ui-server.log") as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_leaked_tasks() -> None:
    """These tests run no event loop of their own (Playwright's sync API keeps one
    running in this thread while a browser is open), so the suite's leaked-task check,
    an async fixture, has nothing to check here and could not run."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's loop must be gone before the async tests
    of other modules run in this thread."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


SERVER_LOG_TAIL = 60
"""Lines of the server's log that a failed test prints (its captured output)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, nfo_server: ServerProcess,
         request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=nfo_server.base, viewport={"width": 1400,
                                                                      "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
        if request.node.stash.get(_FAILED, False):
            lines = nfo_server.log.read_text(errors="replace").splitlines()
            print(f"the server's log ({nfo_server.log}), its last {SERVER_LOG_TAIL} lines:",
                  *lines[-SERVER_LOG_TAIL:], sep="\n")
    assert not errors, f"the page raised: {errors}"


def log_in(page: Page, user: str = "admin", password: str = PASSWORD,
           base: str = "") -> None:
    """Log in through the login form; a refusal fails with what the form said."""
    page.goto(f"{base}/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    signed_in = page.get_by_text(f"Signed in as {user}")
    refused = page.locator("#login-error")
    signed_in.or_(refused).first.wait_for()
    if not signed_in.is_visible():
        raise AssertionError(f"the login of {user} was refused: {refused.inner_text()}")


def violations(page: Page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now, one line each."""
    results = Axe().run(page, options=WCAG)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
            f"{[n['target'] for n in v['nodes']][:3]})"
            for v in results.response["violations"]]


def no_violations(page: Page) -> None:
    assert violations(page) == []


def screenshot(page: Page, name: str) -> None:
    """A full-page screenshot in ARTEFACTS; with NFO_UI_DOCS=1, the main views (DOCS)
    are also copied to docs/ui/, which docs/ui.md shows."""
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    if os.environ.get("NFO_UI_DOCS") == "1" and name in DOCS:
        shutil.copy(ARTEFACTS / f"{name}.png", DOCS_DIR / f"{name}.png")


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base, auth=("admin", PASSWORD), timeout=10,
                        headers={"Accept": "application/yang-data+json"}, trust_env=False)


Json = dict[str, Any]
