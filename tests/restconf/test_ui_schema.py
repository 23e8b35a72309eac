"""GET /restconf/ui/schema: the schema digest the web UI is generated from, over a
real server (tests/ui_yang holds a module with every node kind and type)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nfo.protocol.uischema import digest
from nfo.schema import Schema
from tests.restconf.conftest import UI_YANG, Server

Client = Callable[[str], httpx.AsyncClient]
URL = "/restconf/ui/schema"


def nodes(tree: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for n in tree:
        yield n
        yield from nodes(n.get("children", []))


def by_path(doc: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    """Every node of a module's digest by its path (choices and cases by their name)."""
    mod = next(m for m in doc["modules"] if m["name"] == module)
    return {n.get("path", n["name"]) if n["kind"] not in ("choice", "case") else n["name"]: n
            for n in nodes(mod["nodes"])}


@pytest.fixture
async def uitest(ui_client: Client) -> dict[str, dict[str, Any]]:
    r = await ui_client("alice").get(URL, params={"module": "nfo-uitest"})
    assert r.status_code == 200, r.text
    return by_path(r.json(), "nfo-uitest")


T = "/nfo-uitest:types/"


async def test_every_kind_nested_as_the_schema(uitest: dict[str, dict[str, Any]]) -> None:
    kinds = {n["kind"] for n in uitest.values()}
    assert kinds == {"container", "list", "leaf", "leaf-list", "choice", "case", "anydata",
                     "anyxml", "rpc", "action", "notification", "input", "output"}
    assert uitest["/nfo-uitest:legacy"]["config"] is False
    link = uitest["/nfo-uitest:links/link"]
    assert link["keys"] == ["id"] and link["config"] is True
    assert [c["name"] for c in link["children"]] == [
        "id", "server", "port", "backup", "transport", "fast", "kind", "jitter", "window",
        "pacing", "probe", "flapped"]  # then nfo-uiwhen's augment
    choice = uitest["kind"]
    assert choice["default"] == "plain"
    assert [c["name"] for c in choice["children"]] == ["plain", "tunnel"]
    assert [c["name"] for c in uitest["tunnel"]["children"]] == ["tunnel"]
    assert uitest["/nfo-uitest:links/link/tunnel"]["presence"] is True
    assert uitest["/nfo-uitest:types"]["presence"] is False
    probe = uitest["/nfo-uitest:links/link/probe"]
    assert [c["kind"] for c in probe["children"]] == ["input", "output"]
    assert probe["children"][0]["children"][0]["path"] == "/nfo-uitest:links/link/probe/count"
    assert "config" not in probe["children"][0]["children"][0]
    reset = uitest["/nfo-uitest:reset"]
    assert reset["kind"] == "rpc" and reset["module"] == "nfo-uitest" and reset["prefix"] == "uit"
    assert uitest["/nfo-uitest:counters"]["config"] is False
    assert uitest["/nfo-uitest:counters/id"]["config"] is False


async def test_node_properties(uitest: dict[str, dict[str, Any]]) -> None:
    server = uitest["/nfo-uitest:servers/server"]
    assert server["ordered-by"] == "user" and server["min-elements"] == 0
    assert server["max-elements"] is None
    counters = uitest["/nfo-uitest:counters"]
    assert counters["mandatory"] is True and counters["min-elements"] == 1
    tags = uitest[T + "t-tags"]
    assert tags["kind"] == "leaf-list" and tags["ordered-by"] == "user"
    assert tags["max-elements"] == 4 and tags["defaults"] == ["a", "b"]
    assert uitest[T + "t-enumeration"]["default"] == "green"
    assert uitest[T + "t-uint16"]["default"] == "30"
    assert uitest[T + "t-uint16"]["units"] == "seconds"
    assert uitest[T + "t-uint8"]["units"] == "percent"  # from the typedef
    assert uitest["/nfo-uitest:links/link/server"]["mandatory"] is True
    assert "mandatory" not in uitest["/nfo-uitest:links/link/id"]
    assert uitest[T + "t-old"]["status"] == "deprecated"
    assert T + "t-fancy" in uitest  # its feature is enabled
    assert uitest["/nfo-uitest:types"]["description"] == "One leaf per YANG built-in type."
    assert uitest["/nfo-uitest:links/link/fast"]["when"] == ["../transport = 'uit:sctp-fast'"]
    assert uitest["/nfo-uitest:links/link/transport"]["must"] == [{
        "xpath": "derived-from-or-self(., 'uids:transport')", "error-message": "a transport",
        "error-app-tag": "transport"}]


async def test_types(uitest: dict[str, dict[str, Any]]) -> None:
    def t(name: str) -> dict[str, Any]:
        out: dict[str, Any] = uitest[T + name]["type"]
        return out

    assert t("t-binary") == {"base": "binary", "length": [[1, 16]]}
    assert t("t-bits")["bits"] == [{"name": "read", "position": 0, "description": "May read."},
                                   {"name": "write", "position": 3}]
    assert t("t-boolean") == {"base": "boolean"}
    assert t("t-decimal64") == {"base": "decimal64", "fraction-digits": 2,
                                "range": [["-10.50", "10.25"], ["100.00", "100.00"]]}
    assert t("t-empty") == {"base": "empty"}
    assert t("t-enumeration")["enums"] == [{"name": "red", "value": 1, "description": "Red."},
                                           {"name": "green", "value": 5}]
    assert t("t-instance-identifier") == {"base": "instance-identifier",
                                          "require-instance": False}
    assert t("t-int8")["range"] == [[-5, 5]]
    assert t("t-int16") == {"base": "int16"}
    assert t("t-int32")["range"] == [[-2147483648, -1], [1, 2147483647]]
    assert t("t-int64")["range"] == [["-9223372036854775808", "9223372036854775807"]]
    assert t("t-uint64")["range"] == [["1", "18446744073709551615"]]
    assert t("t-string")["length"] == [[2, 8], [10, 10]]
    assert t("t-string")["patterns"] == [
        {"pattern": "[a-z]+", "invert-match": False, "error-message": "lower case letters only",
         "error-app-tag": "lower-case"},
        {"pattern": "x.*", "invert-match": True}]
    assert t("t-uint8") == {"base": "uint8", "range": [[1, 50]],
                            "typedefs": ["nfo-uitest:small", "nfo-uitest-ids:percent"]}
    assert t("t-uint32") == {"base": "uint32"}
    assert t("t-union") == {"base": "union", "members": [
        {"base": "int8"}, {"base": "enumeration", "enums": [{"name": "auto", "value": 0}]},
        {"base": "uint8", "range": [[0, 100]], "typedefs": ["nfo-uitest-ids:percent"]}]}


async def test_identities_across_modules(uitest: dict[str, dict[str, Any]]) -> None:
    t = uitest[T + "t-identityref"]["type"]
    assert t["bases"] == ["nfo-uitest-ids:transport"]
    assert t["identities"] == [
        {"value": "nfo-uitest-ids:tcp", "description": "TCP."},
        {"value": "nfo-uitest-ids:udp", "description": "UDP."},
        {"value": "nfo-uitest:sctp", "description": "SCTP, derived in another module than its "
                                                    "base."},
        {"value": "nfo-uitest:sctp-fast", "description": "Derived from a derived identity."}]


async def test_leafrefs(uitest: dict[str, dict[str, Any]]) -> None:
    absolute = uitest[T + "t-leafref"]["type"]
    assert absolute == {"base": "leafref", "path": "/uit:servers/uit:server/uit:name",
                        "target": "/nfo-uitest:servers/server/name", "real-base": "string",
                        "require-instance": True}
    relative = uitest["/nfo-uitest:links/link/server"]["type"]
    assert relative["path"] == "../../../servers/server/name"
    assert relative["target"] == "/nfo-uitest:servers/server/name"
    predicate = uitest["/nfo-uitest:links/link/port"]["type"]
    assert predicate["path"] == "/servers/server[name = current()/../server]/port/number"
    assert predicate["target"] == "/nfo-uitest:servers/server/port/number"
    assert predicate["real-base"] == "uint16"
    backup = uitest["/nfo-uitest:links/link/backup"]
    assert backup["kind"] == "leaf-list" and backup["type"]["require-instance"] is False


async def test_credentials_leak_nothing_a_read_hides(ui_client: Client) -> None:
    r = await ui_client("alice").get(URL)
    assert r.status_code == 200
    assert b"not-for-your-eyes" not in r.content
    doc = r.json()
    secret = by_path(doc, "nfo-uitest")["/nfo-uitest:servers/server/secret"]
    assert secret["credential"] is True and "default" not in secret
    assert "default-deny-all" in secret["nacm"]
    vim = by_path(doc, "nfo-vim")
    password = next(n for p, n in vim.items() if p.endswith("/openstack/password"))
    assert password["credential"] is True and "default" not in password
    users = by_path(doc, "nfo-users")
    assert users["/nfo-users:users/user/password"]["credential"] is True
    # the action's input is a credential too (set-password)
    new = users["/nfo-users:users/user/set-password/password"]
    assert new["credential"] is True


async def test_the_whole_module_set(ui_client: Client, ui_server: Server) -> None:
    r = await ui_client("alice").get(URL)
    doc = r.json()
    schema = ui_server.ds.schema
    assert {m["name"] for m in doc["modules"]} == {m.name for m in schema.modules()}
    vim = next(m for m in doc["modules"] if m["name"] == "nfo-vim")
    assert vim["namespace"] == "urn:nfo:vim" and vim["prefix"] == "nfo-vim"
    assert vim["revision"] and vim["implemented"] is True
    netconf = next(m for m in doc["modules"] if m["name"] == "ietf-netconf")
    assert "candidate" in netconf["features"]
    imported = [m for m in doc["modules"] if not m["implemented"]]
    assert imported and all("nodes" not in m for m in imported)
    assert doc["content-id"] == schema.content_id()


async def test_etag_is_the_content_id_and_304(ui_client: Client) -> None:
    c = ui_client("alice")
    lib = await c.get("/restconf/data/ietf-yang-library:yang-library/content-id")
    cid = lib.json()["ietf-yang-library:content-id"]
    r = await c.get(URL)
    assert r.headers["etag"] == f'"{cid}"'
    assert r.headers["cache-control"] == "private, no-cache"
    assert r.headers["content-type"].startswith("application/json")
    again = await c.get(URL, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == r.headers["etag"]
    stale = await c.get(URL, headers={"If-None-Match": '"nfo-0000"'})
    assert stale.status_code == 200 and stale.content == r.content
    one = await c.get(URL, params={"module": "nfo-vim"},
                      headers={"If-None-Match": r.headers["etag"]})
    assert one.status_code == 304
    head = await c.head(URL)
    assert head.status_code == 200 and head.content == b""


async def test_one_module(ui_client: Client) -> None:
    r = await ui_client("alice").get(URL, params={"module": "nfo-uitest-ids"})
    doc = r.json()
    assert [m["name"] for m in doc["modules"]] == ["nfo-uitest-ids"]
    assert doc["modules"][0]["nodes"] == []


async def test_errors(ui_client: Client, ui_server: Server) -> None:
    c = ui_client("alice")
    unknown = await c.get(URL, params={"module": "no-such-module"})
    assert unknown.status_code == 404
    err = unknown.json()["ietf-restconf:errors"]["error"][0]
    assert err["error-tag"] == "invalid-value"
    bad = await c.get(URL, params={"depth": "1"})
    assert bad.status_code == 400
    assert (await c.post(URL)).status_code == 405
    xml = await c.get(URL, headers={"Accept": "application/yang-data+xml"})
    assert xml.status_code == 406
    async with httpx.AsyncClient(base_url=ui_server.base) as anonymous:
        r = await anonymous.get(URL)
    assert r.status_code == 401 and "www-authenticate" in r.headers


def test_modules_installed_later_are_described(tmp_path: Path) -> None:
    """The digest is built per module set: a module added to the state's module
    directory is in the digest of the schema that loads it, with a new content-id."""
    before = Schema(extra_dirs=[UI_YANG])
    installed = tmp_path / "modules"
    installed.mkdir()
    (installed / "nfo-uilate.yang").write_text(
        'module nfo-uilate { yang-version 1.1; namespace "urn:nfo:uilate"; prefix late;\n'
        "  container later { leaf x { type string; } } }\n")
    after = Schema(installed, [UI_YANG])
    old = json.loads(digest(before))
    new = json.loads(digest(after))
    assert "nfo-uilate" not in {m["name"] for m in old["modules"]}
    late = by_path(new, "nfo-uilate")
    assert late["/nfo-uilate:later/x"]["type"] == {"base": "string"}
    assert new["content-id"] != old["content-id"]
    assert digest(after) is digest(after)  # built once, then served from the cache
