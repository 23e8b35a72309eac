"""Configuration in the page, generated from the schema (tests/ui_yang's modules cover
every YANG base type): browse and search, every base type edited and round-tripped,
choice switching, a dependent leafref type-ahead, a 10,000-entry list paged and sorted,
commit -> diff -> rollback, a confirmed commit that is not confirmed, a user NACM makes
read-only, RPC forms with output, the JSON editor for what forms cannot draw, and axe."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.fuzz.server import ServerProcess
from tests.ui.conftest import api, log_in, no_violations, screenshot

UI_YANG = Path(__file__).resolve().parents[1] / "ui_yang"
RAW_YANG = Path(__file__).resolve().parent / "yang"
"""nfo-uiraw: a module whose one container the forms cannot draw (it holds anydata)."""
JSON = "application/yang-data+json"
ENTRIES = 10_000


@pytest.fixture(scope="module")
def nfo_server() -> Iterator[ServerProcess]:
    with ServerProcess(log_name="ui-config.log",
                       extra_args=["--yang-dir", str(UI_YANG),
                                   "--yang-dir", str(RAW_YANG)]) as srv:
        yield srv


@pytest.fixture
def client(nfo_server: ServerProcess) -> Iterator[httpx.Client]:
    with api(nfo_server) as c:
        yield c
        for top in ("nfo-uitest:types", "nfo-uitest:links", "nfo-uitest:servers",
                    "nfo-uiraw:raw"):
            c.delete(f"/restconf/data/{top}")


def write(c: httpx.Client, method: str, path: str, body: object,
          content_type: str = JSON) -> None:
    r = c.request(method, f"/restconf/data/{path}".rstrip("/"), content=json.dumps(body),
                  headers={"Content-Type": content_type})
    assert r.status_code in (200, 201, 204), r.text


def remove_all(c: httpx.Client, target: str) -> None:
    """Every instance of a top-level list (no RESTCONF resource names them all)."""
    write(c, "PATCH", "", {"ietf-yang-patch:yang-patch": {"patch-id": "cleanup", "edit": [
        {"edit-id": "1", "operation": "remove", "target": f"/{target}"}]}},
          content_type="application/yang-patch+json")


def read(c: httpx.Client, path: str) -> object:
    r = c.get(f"/restconf/data/{path}", params={"content": "config"})
    return r.json() if r.status_code == 200 else None


def browse(page: Page, path: str) -> None:
    """The configuration view of a RESTCONF path, by its deep link."""
    page.goto(page.url.split("#")[0] + f"#/browse/{path}")


def edit(page: Page, path: str, form: str) -> Locator:
    """The form of ``path`` in edit mode (the user's candidate)."""
    browse(page, path)
    page.get_by_role("button", name="Edit in candidate").click()
    return page.get_by_role("form", name=form)


def commit(page: Page, comment: str = "") -> None:
    page.get_by_role("link", name="Changes").click()
    form = page.get_by_role("form", name="Commit")
    form.get_by_label("Comment").fill(comment)
    form.get_by_role("button", name="Commit").click()
    expect(page.get_by_text(re.compile(r"Committed"))).to_be_visible()


def test_browse_search_and_deep_links(page: Page, client: httpx.Client) -> None:
    log_in(page)
    with page.expect_response(lambda r: r.url.endswith("/restconf/ui/schema")) as first:
        page.get_by_role("link", name="Configuration").click()
    etag = first.value.headers["etag"]
    library = client.get("/restconf/data/ietf-yang-library:yang-library/content-id").json()
    assert etag == f'"{library["ietf-yang-library:content-id"]}"'
    expect(page.get_by_role("heading", name="nfo-uitest")).to_be_visible()
    page.get_by_label("Search nodes").fill("decimal")
    page.get_by_role("link", name="/nfo-uitest:types/t-decimal64").click()
    assert page.url.endswith("#/browse/nfo-uitest:types")
    expect(page.get_by_role("navigation", name="Path")).to_contain_text("types")
    expect(page.get_by_label("t-decimal64")).to_be_visible()
    no_violations(page)
    tree = page.get_by_role("navigation", name="Schema tree")
    expect(tree.get_by_role("button", name="Collapse nfo-uitest")).to_be_visible()
    toggle = tree.get_by_role("button", name="Expand servers")
    toggle.focus()
    page.keyboard.press("Enter")
    tree.get_by_role("link", name="server", exact=True).click()
    assert page.url.endswith("#/browse/nfo-uitest:servers/server")
    expect(page.get_by_role("navigation", name="Path")).to_contain_text("server")
    with page.expect_response(lambda r: r.url.endswith("/restconf/ui/schema")) as info:
        page.reload()  # the digest is revalidated by its ETag, not sent again
    revalidated = info.value
    # the browser asks with the ETag it cached (Chrome reports the 304 as a 200 from cache)
    assert revalidated.request.all_headers().get("if-none-match") == etag
    r = client.get("/restconf/ui/schema", headers={"If-None-Match": etag,
                                                   "Accept": "application/json"})
    assert r.status_code == 304 and r.content == b""
    expect(page.get_by_role("navigation", name="Schema tree")).to_be_visible()
    page.goto(page.url.split("#")[0] + "#/browse")
    page.get_by_label("Search nodes").fill("leafref targets")  # a description's words
    page.get_by_role("link", name="/nfo-uitest:servers", exact=True).click()
    assert page.url.endswith("#/browse/nfo-uitest:servers")
    browse(page, "nfo-uitest:no-such-node")
    expect(page.get_by_role("alert")).to_contain_text("No schema node")


def test_every_base_type_round_trips(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", {"nfo-uitest:servers": {"server": [
        {"name": "alpha", "protocol": "nfo-uitest-ids:tcp"}]}})
    log_in(page)
    form = edit(page, "nfo-uitest:types", "types fields")
    form.get_by_label("t-binary").fill("aGVsbG8=")
    form.get_by_label("t-boolean").select_option("true")
    form.get_by_label("t-decimal64").fill("3.14")
    form.get_by_label("t-empty").check()
    form.get_by_label("t-int8").fill("-5")
    form.get_by_label("t-int64").fill("-9007199254740993")  # beyond a double's precision
    form.get_by_label("t-uint64").fill("18446744073709551615")
    form.get_by_label("t-string").fill("abc")
    form.get_by_label("t-union").fill("7")
    form.get_by_role("checkbox", name="write").check()
    form.get_by_label("t-int16").fill("-300")
    form.get_by_label("t-int32").fill("70000")
    form.get_by_label("t-uint8").fill("50")
    form.get_by_label("t-uint16").fill("65535")
    form.get_by_label("t-uint32").fill("4294967295")
    form.get_by_label("t-instance-identifier").fill("/nfo-uitest:types/t-string")
    for tag in ("red", "green", "blue"):
        form.get_by_role("button", name="Add t-tags").click()
        form.get_by_role("textbox", name="t-tags").last.fill(tag)
    form.get_by_role("button", name="Remove t-tags green").click()
    expect(form.get_by_role("textbox", name="t-tags")).to_have_count(2)
    options = form.get_by_label("t-enumeration").locator("option")
    expect(options.filter(has_text="red")).to_have_text("red — Red")  # with its description
    expect(form.get_by_label("t-identityref").locator("option", has_text="tcp")).to_have_text(
        re.compile(r"nfo-uitest-ids:tcp — TCP"))
    no_violations(page)  # a form in edit mode, every widget
    form.get_by_label("t-enumeration").select_option(options.nth(1).get_attribute("value"))
    ident = form.get_by_label("t-identityref")
    ident.select_option(ident.locator("option").nth(1).get_attribute("value"))
    form.get_by_label("t-leafref").fill("alpha")
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    assert read(client, "nfo-uitest:types") is None  # nothing in running yet
    commit(page, "every type")
    types = read(client, "nfo-uitest:types")["nfo-uitest:types"]  # type: ignore[index]
    assert types["t-int64"] == "-9007199254740993"
    assert types["t-uint64"] == "18446744073709551615"
    assert types["t-decimal64"] == "3.14" and types["t-int8"] == -5
    assert types["t-boolean"] is True and types["t-empty"] == [None]
    assert types["t-binary"] == "aGVsbG8=" and types["t-tags"] == ["red", "blue"]
    assert types["t-string"] == "abc" and types["t-leafref"] == "alpha"
    assert ":" in types["t-identityref"]
    assert types["t-bits"] == "write" and types["t-int16"] == -300
    assert types["t-int32"] == 70000 and types["t-uint8"] == 50
    assert types["t-uint16"] == 65535 and types["t-uint32"] == 4294967295
    assert types["t-union"] == 7 and types["t-enumeration"] == "red"
    assert types["t-instance-identifier"] == "/nfo-uitest:types/t-string"
    # and back into the form, as it was written
    page.get_by_role("link", name="Configuration").click()
    browse(page, "nfo-uitest:types")
    form = page.get_by_role("form", name="types fields")
    expect(form.get_by_label("t-int64")).to_have_value("-9007199254740993")
    expect(form.get_by_label("t-uint64")).to_have_value("18446744073709551615")
    expect(form.get_by_label("t-decimal64")).to_have_value("3.14")
    expect(form.get_by_label("t-int8")).to_have_value("-5")
    expect(form.get_by_label("t-union")).to_have_value("7")
    expect(form.get_by_label("t-bits").get_by_role("checkbox", name="write")).to_be_checked()
    expect(form.get_by_label("t-empty")).to_be_checked()
    expect(form.get_by_label("t-enumeration")).to_have_value("red")
    expect(form.get_by_label("t-identityref")).to_have_value(types["t-identityref"])
    expect(form.get_by_role("textbox", name="t-tags")).to_have_count(2)
    expect(form.get_by_label("t-instance-identifier")).to_have_value(
        "/nfo-uitest:types/t-string")
    screenshot(page, "configuration")


def test_a_refused_value_is_shown_on_its_field(page: Page, client: httpx.Client) -> None:
    log_in(page)
    form = edit(page, "nfo-uitest:types", "types fields")
    form.get_by_label("t-string").fill("UPPER")
    form.get_by_role("button", name="Save to candidate").click()
    field = form.get_by_label("t-string")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_role("alert")).to_contain_text("lower case letters only")


SERVERS = {"nfo-uitest:servers": {"server": [
    {"name": "alpha", "protocol": "nfo-uitest-ids:tcp", "port": [{"number": 80}, {"number": 443}]},
    {"name": "beta", "protocol": "nfo-uitest-ids:tcp", "port": [{"number": 22}]}]}}


def test_choice_switching(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", SERVERS)
    write(client, "PUT", "nfo-uitest:links", {"nfo-uitest:links": {"link": [
        {"id": "l1", "server": "alpha", "tunnel": {"mtu": 1400}}]}})
    log_in(page)
    browse(page, "nfo-uitest:links/link=l1")
    expect(page.get_by_role("radio", name="tunnel")).to_be_checked()
    page.get_by_role("button", name="Edit in candidate").click()
    form = page.get_by_role("form", name="link fields")
    form.get_by_role("radio", name="plain").check()
    expect(form.get_by_role("checkbox", name="plain")).to_be_checked()
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    expect(page.get_by_role("radio", name="plain")).to_be_checked()
    form.get_by_role("radio", name="tunnel").check()  # and back, to a presence container
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_role("radio", name="tunnel")).to_be_checked()
    form.get_by_role("radio", name="plain").check()
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_role("radio", name="plain")).to_be_checked()
    commit(page)
    link = read(client, "nfo-uitest:links/link=l1")["nfo-uitest:link"][0]  # type: ignore[index]
    assert "plain" in link and "tunnel" not in link


def test_dependent_leafref_type_ahead(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", SERVERS)
    write(client, "PUT", "nfo-uitest:links", {"nfo-uitest:links": {"link": [
        {"id": "l2", "server": "alpha"}]}})
    log_in(page)
    form = edit(page, "nfo-uitest:links/link=l2", "link fields")
    server = form.get_by_role("combobox", name=re.compile("^server"))
    expect(page.locator(f"#{server.get_attribute('list')} option")).to_have_count(2)
    server.fill("beta")
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    port = form.get_by_role("combobox", name=re.compile("^port"))
    options = page.locator(f"#{port.get_attribute('list')} option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "22")


def test_a_10000_entry_list_paged_and_sorted(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", {"nfo-uitest:servers": {"server": [
        {"name": f"s{i:05d}", "protocol": "nfo-uitest-ids:tcp"} for i in range(ENTRIES)]}})
    log_in(page)
    started = time.monotonic()
    browse(page, "nfo-uitest:servers/server")
    table = page.get_by_role("table")
    expect(table.locator("caption")).to_have_text(f"1 to 25 of {ENTRIES}")
    print(f"10,000-entry list open in {time.monotonic() - started:.2f} s")
    expect(table.locator("tbody tr")).to_have_count(25)
    expect(page.get_by_role("columnheader", name="secret")).to_have_count(0)  # a credential
    header = page.get_by_role("button", name=re.compile("^name"))
    header.click()
    expect(page.get_by_role("columnheader", name=re.compile("^name"))).to_have_attribute(
        "aria-sort", "ascending")
    header.click()
    expect(table.locator("tbody tr").first).to_contain_text(f"s{ENTRIES - 1:05d}")
    page.get_by_role("button", name="Next page").click()
    expect(table.locator("caption")).to_have_text(f"26 to 50 of {ENTRIES}")
    expect(table.locator("tbody tr").first).to_contain_text(f"s{ENTRIES - 26:05d}")
    screenshot(page, "paged-list")
    no_violations(page)
    table.get_by_role("link", name=f"s{ENTRIES - 26:05d}").click()
    page.get_by_role("button", name="Edit in candidate").click()
    secret = page.get_by_label("secret")
    expect(secret).to_have_attribute("type", "password")
    expect(secret).to_have_value("")


def stage(page: Page, client: httpx.Client, before: str, after: str) -> None:
    """t-string is ``before`` in running, ``after`` in the user's candidate; the page
    shows the Changes view."""
    write(client, "PUT", "nfo-uitest:types", {"nfo-uitest:types": {"t-string": before}})
    log_in(page)
    form = edit(page, "nfo-uitest:types", "types fields")
    form.get_by_label("t-string").fill(after)
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    page.get_by_role("link", name=re.compile("^Changes")).click()


def test_commit_diff_and_rollback(page: Page, client: httpx.Client) -> None:
    stage(page, client, "before", "after")
    diff = page.get_by_role("table", name=re.compile("Pending changes"))
    expect(diff).to_contain_text("t-string")
    expect(diff).to_contain_text("before")
    expect(diff).to_contain_text("after")
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_role("table", name=re.compile("What a commit would apply"))).to_contain_text(
        "after")
    no_violations(page)
    commit(page, "string to after")
    assert read(client, "nfo-uitest:types/t-string") == {"nfo-uitest:t-string": "after"}
    page.get_by_role("link", name="History").click()
    row = page.get_by_role("row", name=re.compile("string to after"))
    revision = row.get_by_role("rowheader").inner_text()
    row.get_by_role("button", name=f"Diff of revision {revision}").click()
    expect(page.get_by_role("table", name=f"Revision {revision}")).to_contain_text("after")
    screenshot(page, "history")
    no_violations(page)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name=f"Roll back to revision {int(revision) - 1}").click()
    expect(page.get_by_text(re.compile("Rolled back to"))).to_be_visible()
    assert read(client, "nfo-uitest:types/t-string") == {"nfo-uitest:t-string": "before"}


def test_an_unconfirmed_commit_rolls_back(page: Page, client: httpx.Client) -> None:
    log_in(page)
    form = edit(page, "nfo-uitest:types", "types fields")
    form.get_by_label("t-string").fill("tent")
    form.get_by_role("button", name="Save to candidate").click()
    page.get_by_role("link", name=re.compile("^Changes")).click()
    commit_form = page.get_by_role("form", name="Commit")
    commit_form.get_by_label("Confirmed commit").check()
    commit_form.get_by_label("Confirm within (seconds)").fill("2")
    commit_form.get_by_role("button", name="Commit").click()
    expect(page.get_by_role("button", name="Confirm commit")).to_be_visible()
    assert read(client, "nfo-uitest:types/t-string") == {"nfo-uitest:t-string": "tent"}
    deadline = time.monotonic() + 30
    while read(client, "nfo-uitest:types/t-string") is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read(client, "nfo-uitest:types/t-string") is None  # reverted, not confirmed


def test_a_user_nacm_makes_read_only(page: Page, client: httpx.Client) -> None:
    write(client, "POST", "nfo-users:users", {"nfo-users:user": [{"name": "viewer"}]})
    r = client.post("/restconf/data/nfo-users:users/user=viewer/set-password",
                    content=json.dumps({"nfo-users:input": {"password": "viewer-pw"}}),
                    headers={"Content-Type": JSON})
    assert r.status_code == 204, r.text
    write(client, "PUT", "nfo-uitest:types", {"nfo-uitest:types": {"t-string": "seen"}})
    try:
        log_in(page, "viewer", "viewer-pw")
        browse(page, "nfo-uitest:types")
        expect(page.get_by_label("t-string")).to_have_value("seen")
        expect(page.get_by_text("Read-only for you")).to_be_visible()
        expect(page.get_by_role("button", name="Edit in candidate")).to_be_disabled()
        expect(page.get_by_label("t-string")).to_be_disabled()
        browse(page, "nfo-uitest:links/link")  # a list: no entry to add or delete either
        expect(page.get_by_text("Read-only for you")).to_be_visible()
        expect(page.get_by_role("button", name="Edit in candidate")).to_be_disabled()
    finally:
        client.delete("/restconf/data/nfo-users:users/user=viewer")


def test_rpc_form_with_output(page: Page, client: httpx.Client) -> None:
    log_in(page)
    browse(page, "nfo-transactions:history")
    form = page.get_by_role("form", name="history operation")
    form.get_by_label("limit").fill("3")
    form.get_by_role("button", name="Run history").click()
    expect(page.get_by_role("region", name="Output of history")).to_contain_text("revision")


def test_a_notification_shows_what_it_carries(page: Page, client: httpx.Client) -> None:
    log_in(page)
    tree = page.get_by_role("navigation", name="Schema tree")
    browse(page, "nfo-uitest:types")
    tree.get_by_role("link", name="alarm", exact=True).click()
    carries = page.get_by_role("table", name="What alarm carries")
    expect(carries.get_by_role("rowheader", name="text")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("button", name="Edit in candidate")).to_have_count(0)
    no_violations(page)


def test_what_forms_cannot_draw_gets_a_json_editor(page: Page, client: httpx.Client) -> None:
    log_in(page)
    browse(page, "nfo-uitest:blob")
    expect(page.get_by_label("JSON of blob")).to_be_visible()
    no_violations(page)


def test_a_field_whose_when_is_false_is_hidden(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", SERVERS)
    write(client, "PUT", "nfo-uitest:links", {"nfo-uitest:links": {"link": [
        {"id": "l3", "server": "alpha", "transport": "nfo-uitest-ids:tcp"}]}})
    log_in(page)
    browse(page, "nfo-uitest:links/link=l3")
    form = page.get_by_role("form", name="link fields")
    expect(form.get_by_label("transport")).to_be_visible()
    expect(form.get_by_label("fast")).to_have_count(0)  # when "../transport = 'uit:sctp-fast'"
    page.get_by_role("button", name="Edit in candidate").click()
    form.get_by_label("transport").select_option("nfo-uitest:sctp-fast")
    form.get_by_role("button", name="Save to candidate").click()
    expect(form.get_by_label("fast")).to_be_visible()
    page.get_by_role("button", name="View running and state").click()
    expect(form.get_by_label("fast")).to_have_count(0)  # running still has tcp


def test_a_presence_container_is_created_and_deleted(page: Page, client: httpx.Client) -> None:
    write(client, "PUT", "nfo-uitest:servers", SERVERS)
    write(client, "PUT", "nfo-uitest:links", {"nfo-uitest:links": {"link": [
        {"id": "l5", "server": "alpha"}]}})
    log_in(page)
    browse(page, "nfo-uitest:links/link=l5/tunnel")
    page.get_by_role("button", name="Edit in candidate").click()
    page.get_by_role("button", name="Create tunnel").click()
    expect(page.get_by_role("button", name="Delete tunnel")).to_be_visible()
    commit(page, "a tunnel")
    link = read(client, "nfo-uitest:links/link=l5")["nfo-uitest:link"][0]  # type: ignore[index]
    assert "tunnel" in link
    page.go_back()
    page.get_by_role("button", name="Edit in candidate").click()
    page.get_by_role("button", name="Delete tunnel").click()
    expect(page.get_by_role("button", name="Create tunnel")).to_be_visible()
    commit(page)
    link = read(client, "nfo-uitest:links/link=l5")["nfo-uitest:link"][0]  # type: ignore[index]
    assert "tunnel" not in link


NACM = "/restconf/data/ietf-netconf-acm:nacm"


def add_viewer(c: httpx.Client, password: str) -> None:
    write(c, "POST", "nfo-users:users", {"nfo-users:user": [{"name": "viewer"}]})
    r = c.post("/restconf/data/nfo-users:users/user=viewer/set-password",
               content=json.dumps({"nfo-users:input": {"password": password}}),
               headers={"Content-Type": JSON})
    assert r.status_code == 204, r.text


def test_what_a_user_may_not_read_is_absent(page: Page, client: httpx.Client) -> None:
    """NACM denies the viewer the read of one leaf of a container and one column of a
    list: the page draws neither (not an empty field), and the rest as before."""
    add_viewer(client, "viewer-pw")
    write(client, "PATCH", "ietf-netconf-acm:nacm", {"ietf-netconf-acm:nacm": {
        "groups": {"group": [{"name": "ui-viewers", "user-name": ["viewer"]}]},
        "rule-list": [{"name": "ui-viewers", "group": ["ui-viewers"], "rule": [
            {"name": "no-int8", "module-name": "nfo-uitest",
             "path": "/nfo-uitest:types/t-int8", "access-operations": "read",
             "action": "deny"},
            {"name": "no-protocol", "module-name": "nfo-uitest",
             "path": "/nfo-uitest:servers/server/protocol",
             "access-operations": "read", "action": "deny"}]}]}})
    write(client, "PUT", "nfo-uitest:types", {"nfo-uitest:types": {"t-string": "seen",
                                                                     "t-int8": 3}})
    write(client, "PUT", "nfo-uitest:servers", SERVERS)
    try:
        log_in(page)  # the administrator sees both
        browse(page, "nfo-uitest:types")
        expect(page.get_by_label("t-int8")).to_have_value("3")
        browse(page, "nfo-uitest:servers/server")
        expect(page.get_by_role("columnheader", name="protocol")).to_be_visible()
        page.get_by_role("button", name="Edit in candidate").click()  # may add and delete
        expect(page.get_by_role("button", name="Add server")).to_be_visible()
        expect(page.get_by_role("button", name="Delete server alpha")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_text("You have logged out.")).to_be_visible()  # not cut short
        log_in(page, "viewer", "viewer-pw")
        browse(page, "nfo-uitest:types")
        expect(page.get_by_label("t-string")).to_have_value("seen")
        expect(page.get_by_label("t-int8")).to_have_count(0)
        expect(page.get_by_label("t-int16")).to_be_visible()  # readable, not set
        browse(page, "nfo-uitest:servers/server")
        expect(page.get_by_role("table").locator("tbody tr")).to_have_count(2)
        expect(page.get_by_role("columnheader", name="protocol")).to_have_count(0)
        expect(page.get_by_role("table")).not_to_contain_text("tcp")
        browse(page, "nfo-uitest:servers/server=alpha")
        expect(page.get_by_label("name", exact=True)).to_have_value("alpha")
        expect(page.get_by_label("protocol")).to_have_count(0)
    finally:
        client.delete(f"{NACM}/rule-list=ui-viewers")
        client.delete(f"{NACM}/groups/group=ui-viewers")
        client.delete("/restconf/data/nfo-users:users/user=viewer")


def test_a_module_the_forms_cannot_draw_gets_a_json_editor(page: Page,
                                                           client: httpx.Client) -> None:
    """nfo-uiraw's container holds anydata: that module is edited as JSON (read, changed,
    committed), while the other modules keep their forms."""
    write(client, "PUT", "nfo-uiraw:raw", {"nfo-uiraw:raw": {
        "label": "first", "extra": {"anything": {"depth": 1}}}})
    log_in(page)
    page.get_by_role("link", name="Configuration").click()
    page.get_by_role("link", name="raw", exact=True).click()
    editor = page.get_by_label("JSON of raw")
    expect(editor).to_have_value(re.compile(r'"label": "first"'))
    expect(page.get_by_role("form", name="raw fields")).to_have_count(0)
    no_violations(page)
    editor.fill(json.dumps({"nfo-uiraw:raw": {"label": "second",
                                              "extra": {"anything": {"depth": 2}}}}))
    page.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate.")).to_be_visible()
    commit(page, "raw by JSON")
    assert read(client, "nfo-uiraw:raw") == {"nfo-uiraw:raw": {
        "label": "second", "extra": {"anything": {"depth": 2}}}}
    browse(page, "nfo-uitest:types")  # another module: a form, not JSON
    expect(page.get_by_role("form", name="types fields")).to_be_visible()
    expect(page.get_by_label(re.compile("^JSON of"))).to_have_count(0)
    browse(page, "nfo-uiraw:raw")
    expect(editor).to_have_value(re.compile(r'"label": "second"'))  # loaded, then typed over
    editor.fill("{not json")
    page.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_role("alert")).to_be_visible()  # the server's error, not a crash


def test_validate_discard_and_confirm(page: Page, client: httpx.Client) -> None:
    stage(page, client, "kept", "dropped")
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_text("The candidate is valid.")).to_be_visible()
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_text("No changes.")).to_be_visible()
    assert read(client, "nfo-uitest:types/t-string") == {"nfo-uitest:t-string": "kept"}
    form = edit(page, "nfo-uitest:types", "types fields")
    expect(form.get_by_label("t-string")).to_have_value("kept")  # the candidate is running's
    form.get_by_label("t-string").fill("sure")
    form.get_by_role("button", name="Save to candidate").click()
    expect(page.get_by_text("Saved to your candidate")).to_be_visible()
    page.get_by_role("link", name=re.compile("^Changes")).click()
    commit_form = page.get_by_role("form", name="Commit")
    commit_form.get_by_label("Confirmed commit").check()
    commit_form.get_by_label("Confirm within (seconds)").fill("2")
    commit_form.get_by_role("button", name="Commit").click()
    page.get_by_role("button", name="Confirm commit").click()
    expect(page.get_by_text("Confirmed.")).to_be_visible()
    time.sleep(3)  # past the confirm timeout: a confirmed commit stays
    assert read(client, "nfo-uitest:types/t-string") == {"nfo-uitest:t-string": "sure"}

