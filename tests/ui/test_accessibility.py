"""axe-core (through axe-playwright-python) finds no WCAG 2 A/AA violation on the main
views: the login form, each view of the shell (configuration: the module list and an entry's
form, in view and edit mode), and the create-instance dialog.  Other tests check the views
with data in them: a running instance, the redeploy dialog and an action's output
(test_instances), the re-login dialog (test_shell), the forms of every type, a paged list,
pending changes with a dry run, a commit's diff and the JSON editor (test_config)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import log_in, violations


def test_login_form(page: Page) -> None:
    page.goto("/ui/")
    expect(page.get_by_label("User name")).to_be_visible()
    assert violations(page) == []


VIEWS = [("instances", "NF instances", "Create instance"),
         ("catalog", "NF catalog", "UDP echo"),
         ("vims", "VIMs", "local"),
         ("browse", "Configuration", "Search nodes"),
         ("browse/nfo-vim:vims/vim=local", "Configuration", "Edit in candidate"),
         ("changes", "Changes", "No changes."),
         ("history", "History", "commits of running")]


@pytest.mark.parametrize("view,heading,shown", VIEWS, ids=[v[0] for v in VIEWS])
def test_views(page: Page, view: str, heading: str, shown: str) -> None:
    """Each view of the shell, once what it loads is drawn."""
    log_in(page)
    page.goto(f"/ui/#/{view}")
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
    expect(page.get_by_text(shown).first).to_be_visible()
    expect(page.get_by_text(re.compile("^Loading"))).to_have_count(0)
    assert violations(page) == []


def test_a_form_in_edit_mode(page: Page) -> None:
    log_in(page)
    page.goto("/ui/#/browse/nfo-vim:vims/vim=local")
    page.get_by_role("button", name="Edit in candidate").click()
    expect(page.get_by_role("button", name="Save to candidate")).to_be_visible()
    expect(page.get_by_role("form", name="vim fields").get_by_label("description")).to_be_editable()
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
