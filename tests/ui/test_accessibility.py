"""axe-core (through axe-playwright-python) finds no WCAG 2 A/AA violation on the main
views: the login form, each view of the shell, and the create-instance dialog."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.ui.conftest import log_in

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"]}


def violations(page: Page) -> list[str]:
    results = Axe().run(page, options=WCAG)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
            f"{[n['target'] for n in v['nodes']][:3]})"
            for v in results.response["violations"]]


def test_login_form(page: Page) -> None:
    page.goto("/ui/")
    expect(page.get_by_label("User name")).to_be_visible()
    assert violations(page) == []


@pytest.mark.parametrize("view,heading", [("instances", "NF instances"),
                                          ("catalog", "NF catalog"), ("vims", "VIMs")])
def test_views(page: Page, view: str, heading: str) -> None:
    log_in(page)
    page.goto(f"/ui/#/{view}")
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
    page.wait_for_load_state("networkidle") if view != "instances" else None
    expect(page.get_by_text("Loading…")).to_have_count(0)
    assert violations(page) == []


def test_create_dialog(page: Page) -> None:
    log_in(page)
    page.get_by_role("button", name="Create instance").click()
    dialog = page.get_by_role("dialog", name="Create an NF instance")
    dialog.get_by_label("Descriptor").select_option("udp-echo")
    expect(dialog.get_by_label("port (required)")).to_be_visible()
    assert violations(page) == []


def test_the_check_can_fail(page: Page) -> None:
    """A canary: an unlabeled input added to the page is reported."""
    page.goto("/ui/")
    expect(page.get_by_label("User name")).to_be_visible()
    page.evaluate("document.querySelector('form').append(document.createElement('input'))")
    assert any(v.startswith("label:") for v in violations(page))
