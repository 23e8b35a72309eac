"""NF instances in the page: created from a catalog entry's form, running on the local
VIM with live state, errors on the field they concern, actions, and a stream that
reconnects with Last-Event-ID after the server restarts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fuzz.server import PASSWORD, ServerProcess
from tests.netutil import free_port
from tests.ui.conftest import api, log_in, no_violations, screenshot

RUNNING_TIMEOUT = 60_000


def create_echo(c: httpx.Client, name: str, port: int | None = None) -> None:
    """An instance of the demo catalog's udp-echo, created over RESTCONF (not the page)."""
    r = c.post("/restconf/data/nfo-instances:nf-instances", json={
        "nfo-instances:nf-instance": [{"name": name, "descriptor": "udp-echo", "parameter": [
            {"name": "port", "value": str(port if port is not None else free_port())}]}]},
               headers={"Content-Type": "application/yang-data+json"})
    assert r.status_code == 201, r.text


@pytest.fixture
def cleanup(nfo_server: ServerProcess) -> Iterator[None]:
    yield
    with api(nfo_server) as c:
        c.delete("/restconf/data/nfo-instances:nf-instances")


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f"tr[data-instance='{name}']")


def create(page: Page, name: str, port: str) -> None:
    page.get_by_role("button", name="Create instance").click()
    dialog = page.get_by_role("dialog", name="Create an NF instance")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Descriptor").select_option("udp-echo")
    dialog.get_by_label("port (required)").fill(port)
    dialog.get_by_role("button", name="Create").click()


def test_an_nf_created_in_the_page_reaches_running(page: Page, cleanup: None) -> None:
    log_in(page)
    create(page, "ui-echo", str(free_port()))
    expect(page.get_by_role("dialog")).to_have_count(0)
    status = row(page, "ui-echo").locator(".status")
    expect(status).to_have_text("running", timeout=RUNNING_TIMEOUT)
    expect(row(page, "ui-echo")).to_contain_text("local")
    screenshot(page, "instances")
    no_violations(page)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete ui-echo").click()
    expect(row(page, "ui-echo")).to_have_count(0)


def test_a_refused_write_is_shown_on_its_field(page: Page, cleanup: None) -> None:
    log_in(page)
    create(page, "bad name!", "7")
    dialog = page.get_by_role("dialog", name="Create an NF instance")
    name = dialog.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    described = name.get_attribute("aria-describedby")
    assert described
    expect(dialog.locator(f"#{described}")).to_be_visible()
    screenshot(page, "create-error")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)


def running(page: Page, server: ServerProcess, name: str) -> None:
    """An instance created over RESTCONF, seen running in the page."""
    with api(server) as c:
        create_echo(c, name)
    log_in(page)
    expect(row(page, name).locator(".status")).to_have_text("running", timeout=RUNNING_TIMEOUT)


def test_actions_and_admin_state(page: Page, nfo_server: ServerProcess, cleanup: None) -> None:
    running(page, nfo_server, "acted")
    page.get_by_role("button", name="Restart acted").click()
    expect(page.locator("[aria-live=polite]")).to_have_text("acted: restart requested")
    page.get_by_role("button", name="Disable acted").click()
    expect(row(page, "acted")).to_contain_text("disabled")
    with api(nfo_server) as c:
        doc = c.get("/restconf/data/nfo-instances:nf-instances/nf-instance=acted/admin-state")
        assert doc.json() == {"nfo-instances:admin-state": "disabled"}
    expect(row(page, "acted").locator(".status")).not_to_have_text(
        re.compile("^running$"), timeout=RUNNING_TIMEOUT)


def test_live_state_resumes_after_a_server_restart(page: Page, tmp_path: Path) -> None:
    """The server restarts while the page is open: the stream reconnects, the ended
    session asks for the password over the page, and the events logged while the page
    was away arrive (Last-Event-ID), without reloading the page."""
    port = free_port()
    with ServerProcess(state=tmp_path / "state", log_name="ui-restart.log") as srv:
        page.context.set_default_navigation_timeout(30_000)
        page.goto(f"{srv.base}/ui/")
        log_in(page, base=srv.base)
        expect(page.locator(".live-live")).to_be_visible()
        with api(srv) as c:
            create_echo(c, "before")
        expect(row(page, "before").locator(".status")).to_have_text(
            "running", timeout=RUNNING_TIMEOUT)
        resumed: list[str] = []
        page.on("request", lambda r: resumed.append(r.headers.get("last-event-id", ""))
                if "/restconf/streams/" in r.url else None)
        srv.stop()
        expect(page.locator(".live-live")).to_have_count(0)
        srv.start()  # same state, same ports
        with api(srv) as c:  # while the page is away
            create_echo(c, "while-away", port)
        again = page.get_by_role("dialog", name="Log in again")
        expect(again).to_be_visible(timeout=30_000)
        expect(again.get_by_label("Password")).to_be_focused()
        again.get_by_label("Password").fill(PASSWORD)
        again.get_by_role("button", name="Log in").click()
        expect(again).to_have_count(0)
        expect(row(page, "while-away").locator(".status")).to_have_text(
            "running", timeout=RUNNING_TIMEOUT)
        assert resumed and all(r.isdigit() for r in resumed), resumed
        with api(srv) as c:
            c.delete("/restconf/data/nfo-instances:nf-instances")


def test_reason_placement_attempts_and_next_retry(page: Page, nfo_server: ServerProcess,
                                                  cleanup: None) -> None:
    """A local VIM that may run one process: the second instance fails to start for a
    while, and the page shows why, where placement put it, its attempts and the next
    retry, live."""
    vim = "/restconf/data/nfo-vim:vims/vim=local/local/max-processes"
    with api(nfo_server) as c:
        r = c.put(vim, json={"nfo-vim:max-processes": 1},
                  headers={"Content-Type": "application/yang-data+json"})
        assert r.status_code in (201, 204), r.text
    try:
        log_in(page)
        with api(nfo_server) as c:
            create_echo(c, "first")
        expect(row(page, "first").locator(".status")).to_have_text(
            "running", timeout=RUNNING_TIMEOUT)
        with api(nfo_server) as c:
            create_echo(c, "second")
        second = row(page, "second")
        expect(second.locator("td.reason")).to_contain_text("is full", timeout=RUNNING_TIMEOUT)
        expect(second.locator("td.placement")).to_contain_text("placed on VIM 'local'")
        expect(second.locator("td.attempts")).to_have_text(re.compile(r"^[1-9]\d*$"))
        expect(second.locator("td.next-retry")).not_to_be_empty()
        screenshot(page, "instances-retrying")
    finally:
        with api(nfo_server) as c:
            c.delete("/restconf/data/nfo-instances:nf-instances")
            c.delete(vim)


def test_redeploy(page: Page, nfo_server: ServerProcess, cleanup: None) -> None:
    running(page, nfo_server, "moved")
    page.get_by_role("button", name="Redeploy moved").click()
    dialog = page.get_by_role("dialog", name="Redeploy moved")
    dialog.get_by_label("VIM").select_option("local")
    no_violations(page)
    dialog.get_by_role("button", name="Redeploy").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("[aria-live=polite]")).to_have_text("moved: redeploy requested")
    expect(row(page, "moved").locator(".status")).to_have_text(
        "running", timeout=RUNNING_TIMEOUT)


def test_an_action_form_with_its_output(page: Page, nfo_server: ServerProcess,
                                        cleanup: None) -> None:
    """The actions of an entry are forms generated from the schema: one with input
    (a leafref with its values) and their output."""
    with api(nfo_server) as c:
        create_echo(c, "acts")
    log_in(page)
    page.goto("/ui/#/browse/nfo-instances:nf-instances/nf-instance=acts")
    form = page.get_by_role("form", name="redeploy operation")
    vim = form.get_by_role("combobox", name=re.compile("^vim"))
    expect(page.locator(f"#{vim.get_attribute('list')} option")).to_have_count(1)
    vim.fill("local")
    form.get_by_role("button", name="Run redeploy").click()
    expect(form.get_by_role("region", name="Output of redeploy")).to_contain_text("result")
    restart = page.get_by_role("form", name="restart operation")
    restart.get_by_role("button", name="Run restart").click()
    expect(restart.get_by_role("region", name="Output of restart")).to_contain_text(
        "restart of 'acts' scheduled")
    screenshot(page, "action-output")
    no_violations(page)
    # an action's deep link without its entry says where to run it
    page.goto("/ui/#/browse/nfo-instances:nf-instances/nf-instance/restart")
    expect(page.get_by_text("runs on one entry")).to_be_visible()
