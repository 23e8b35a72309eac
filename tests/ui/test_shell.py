"""The page in a real browser: login, the views, logout, a session that ends by
itself (idle timeout)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fuzz.server import PASSWORD, ServerProcess
from tests.ui.conftest import log_in, screenshot, violations


def test_root_redirects_to_the_login_form(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(page.context.pages[0].url)
    assert page.url.endswith("/ui/")
    expect(page.get_by_role("heading", name="nfo")).to_be_visible()
    expect(page.get_by_label("User name")).to_be_focused()
    expect(page.get_by_role("status")).to_have_count(0)  # nothing has ended yet
    screenshot(page, "login")


def test_a_wrong_password_is_said_and_not_kept(page: Page) -> None:
    page.goto("/ui/")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("The user name or password is wrong.")
    expect(page.get_by_label("Password")).to_have_value("")


def test_login_shows_the_instances_and_a_reload_keeps_the_session(page: Page) -> None:
    log_in(page)
    expect(page.get_by_role("heading", name="NF instances", level=1)).to_be_visible()
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "nfo-session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    stored = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert stored == "[{},{}]"  # nothing kept in the browser's storage, the password least
    assert page.get_by_label("Password").count() == 0  # nor left in a field
    page.reload()
    expect(page.get_by_text("Signed in as admin")).to_be_visible()


def test_logout_ends_the_session_on_the_server(page: Page, nfo_server: ServerProcess) -> None:
    log_in(page)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "nfo-session")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You have logged out.")).to_have_role("status")
    r = page.request.get("/restconf/data/nfo-vim:vims",
                         headers={"Cookie": f"nfo-session={token}"})
    assert r.status == 401
    assert r.headers["www-authenticate"].startswith("Cookie")


def test_the_views_are_reachable_by_keyboard(page: Page) -> None:
    log_in(page)
    expect(page.get_by_role("heading", name="NF instances", level=1)).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Log out")).to_be_focused()
    for name in ("History", "Changes", "Configuration", "VIMs", "NF catalog", "NF instances",
                 "Skip to content"):
        page.keyboard.press("Shift+Tab")
        expect(page.get_by_role("link", name=name, exact=True)).to_be_focused()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="VIMs")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="VIMs", level=1)).to_be_focused()
    assert page.url.endswith("#/vims")


IDLE = 3


def test_an_idle_session_ends_and_the_page_asks_again(page: Page) -> None:
    """A server whose login sessions end after IDLE seconds without a request: the page
    left open learns it by itself, asks for the password over the view it shows, and
    carries on where it was; the old cookie is refused."""
    with ServerProcess(log_name="ui-idle.log",
                       extra_args=["--ui-idle-timeout", str(IDLE)]) as srv:
        log_in(page, base=srv.base)
        page.goto(f"{srv.base}/ui/#/vims")
        expect(page.get_by_role("heading", name="VIMs", level=1)).to_be_visible()
        old = next(c["value"] for c in page.context.cookies() if c["name"] == "nfo-session")
        again = page.get_by_role("dialog", name="Log in again")
        expect(again).to_be_visible(timeout=(IDLE + 10) * 1000)
        expect(again.get_by_role("status")).to_have_text(
            "The session of admin has ended. Log in again.")
        expect(again.get_by_label("Password")).to_be_focused()
        assert violations(page) == []
        r = page.request.get(f"{srv.base}/restconf/data/nfo-vim:vims",
                             headers={"Cookie": f"nfo-session={old}"})
        assert r.status == 401
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(again).to_have_count(0)
        expect(page.get_by_role("heading", name="VIMs", level=1)).to_be_visible()
        assert page.url.endswith("#/vims")
