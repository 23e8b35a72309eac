"""The main flows with the keyboard only (no clicks): log in, create an NF instance from
the catalog, browse to a configuration entry through the schema tree, edit it, commit
with a comment, and roll it back from the history.  Focus is moved by Tab alone, so each
control on the way is reachable and nothing traps the focus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.fuzz.server import PASSWORD, ServerProcess
from tests.netutil import free_port
from tests.ui.conftest import api

MAX_TABS = 120


def focused(target: Locator) -> bool:
    return bool(target.evaluate("e => e === document.activeElement"))


def tab_to(page: Page, target: Locator, key: str = "Tab") -> None:
    """Press Tab until ``target`` has the focus (it must be reachable in MAX_TABS)."""
    target.wait_for()
    for _ in range(MAX_TABS):
        if focused(target):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{target} is not reachable with {key}")


@pytest.fixture
def cleanup(nfo_server: ServerProcess) -> Iterator[None]:
    yield
    with api(nfo_server) as c:
        c.delete("/restconf/data/nfo-instances:nf-instances")


def log_in_by_keyboard(page: Page) -> None:
    page.goto("/ui/")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="NF instances", level=1)).to_be_focused()


def test_create_an_instance_by_keyboard(page: Page, cleanup: None) -> None:
    log_in_by_keyboard(page)
    tab_to(page, page.get_by_role("button", name="Create instance"))
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create an NF instance")
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.type("keyed")
    page.keyboard.press("Tab")
    expect(dialog.get_by_label("Descriptor")).to_be_focused()
    page.keyboard.press("ArrowDown")  # the first catalog entry
    expect(dialog.get_by_label("Descriptor")).to_have_value("udp-echo")
    tab_to(page, dialog.get_by_label("port (required)"))
    page.keyboard.type(str(free_port()))
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_have_count(0)
    status = page.locator("tr[data-instance='keyed'] .status")
    expect(status).to_have_text("running", timeout=60_000)
    tab_to(page, page.get_by_role("button", name="Restart keyed"))
    page.keyboard.press("Enter")
    expect(page.locator("[aria-live=polite]")).to_have_text("keyed: restart requested")
    tab_to(page, page.get_by_role("button", name="Redeploy keyed"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Redeploy keyed")).to_be_visible()
    page.keyboard.press("Escape")  # a dialog closes with Escape, the focus comes back
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("button", name="Redeploy keyed")).to_be_focused()


def test_edit_commit_and_roll_back_by_keyboard(page: Page, nfo_server: ServerProcess) -> None:
    description = "/restconf/data/nfo-vim:vims/vim=local/description"
    with api(nfo_server) as c:
        before = c.get(description).json()
    log_in_by_keyboard(page)
    tab_to(page, page.get_by_role("link", name="Configuration"), "Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Configuration", level=1)).to_be_focused()
    tree = page.get_by_role("navigation", name="Schema tree")
    tab_to(page, tree.get_by_role("button", name="Expand nfo-vim"))
    page.keyboard.press("Enter")
    tab_to(page, tree.get_by_role("link", name="vims", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Path")).to_contain_text("vims")
    tab_to(page, page.get_by_role("main").get_by_role("link", name="vim", exact=True))
    page.keyboard.press("Enter")
    table = page.get_by_role("table")
    tab_to(page, table.get_by_role("link", name="local"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Path")).to_contain_text("vim=local")
    tab_to(page, page.get_by_role("button", name="Edit in candidate"))
    page.keyboard.press("Enter")
    form = page.get_by_role("form", name="vim fields")
    tab_to(page, form.get_by_label("description"))
    page.keyboard.press("Control+A")
    page.keyboard.type("keyboard")
    tab_to(page, form.get_by_role("button", name="Save to candidate"))
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    tab_to(page, page.get_by_role("link", name="Changes 1 pending"), "Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("table", name="Pending changes in your candidate: 1 change"))\
        .to_contain_text("keyboard")
    tab_to(page, page.get_by_label("Comment"))
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Committed as revision")).to_be_visible()
    with api(nfo_server) as c:
        assert c.get(description).json() == {"nfo-vim:description": "keyboard"}
    tab_to(page, page.get_by_role("link", name="History"), "Shift+Tab")
    page.keyboard.press("Enter")
    row = page.get_by_role("row", name="typed, not clicked")
    revision = row.get_by_role("rowheader").inner_text()
    tab_to(page, row.get_by_role("button", name=f"Diff of revision {revision}"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("table", name=f"Revision {revision}")).to_contain_text("keyboard")
    back = f"Roll back to revision {int(revision) - 1}"
    tab_to(page, page.get_by_role("button", name=back))
    page.once("dialog", lambda d: d.accept())  # the browser's own confirm()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Rolled back to")).to_be_visible()
    with api(nfo_server) as c:
        assert c.get(description).json() == before

