"""nfo.client's history, diff, rollback, commit comments and paged lists against a real
``nfo serve`` on loopback: a fresh server per test, since a rollback changes the whole
configuration."""

from __future__ import annotations

import asyncio

import pytest

from nfo.client import (
    AsyncClient,
    Client,
    ClientConfig,
    InvalidData,
    OutOfRange,
    Page,
)
from tests.fuzz.server import PASSWORD, ServerProcess
from tests.history import compact_past


def _client(srv: ServerProcess) -> Client:
    return Client(ClientConfig(url=srv.base, user="admin", password=PASSWORD))


def test_history_lists_each_write_with_its_comment_newest_first(
        fresh_served: ServerProcess) -> None:
    with _client(fresh_served) as nfo:
        nfo.vims.add({"name": "lab", "type": "nfo-vim:sim"}, comment="the lab VIM")
        nfo.catalog.add([{"id": f"fw-{n}", "vim-types": ["nfo-vim:sim"]} for n in range(2)],
                        comment="two firewalls")
        nfo.vims.update("lab", {"description": "rack 4"})
        newest = nfo.history(limit=2)
        assert [c["user"] for c in newest] == ["admin", "admin"]
        assert newest[0]["revision"] > newest[1]["revision"]
        assert newest[0]["comment"] == "restconf PATCH /nfo-vim:vims/vim[name='lab']"
        assert newest[1]["comment"].endswith(": two firewalls")
        assert [c["changes"] for c in newest] == [1, 2]      # a created entry is one
        older = nfo.history(limit=1, before=newest[1]["revision"])
        assert len(older) == 1 and older[0]["revision"] < newest[1]["revision"]
        assert older[0]["comment"].endswith(": the lab VIM")
        assert older[0]["timestamp"] <= newest[0]["timestamp"]
        with pytest.raises(InvalidData) as bad:
            nfo.history(limit=0)
        assert bad.value.tag == "invalid-value"


def test_diff_of_a_revision_and_a_rollback_to_it(fresh_served: ServerProcess) -> None:
    with _client(fresh_served) as nfo:
        nfo.vims.add({"name": "lab", "type": "nfo-vim:sim", "description": "rack 4"})
        added = nfo.history(limit=1)[0]["revision"]
        nfo.vims.update("lab", {"description": "rack 5", "enabled": False})
        changed = nfo.history(limit=1)[0]["revision"]
        create = nfo.diff(added)
        assert [(d["operation"], d["path"]) for d in create] == [
            ("create", "/nfo-vim:vims/vim[name='lab']")]
        assert create[0]["data"]["nfo-vim:vim"][0]["description"] == "rack 4"
        modify = {d["path"].rsplit("/", 1)[-1]: d for d in nfo.diff(changed)}
        assert modify["description"]["operation"] == "modify"
        assert (modify["description"]["previous-value"], modify["description"]["value"]) == (
            "rack 4", "rack 5")
        assert modify["enabled"]["value"] == "false"
        assert nfo.diff() == []                     # nobody edits the shared candidate

        new = nfo.rollback(added, comment="rack 5 was wrong")
        assert new is not None and new > changed
        lab = nfo.vims.get("lab")
        assert lab is not None and lab["description"] == "rack 4" and "enabled" not in lab
        top = nfo.history(limit=1)[0]
        assert (top["revision"], top["comment"]) == (new, f"rollback to {added}: rack 5 was wrong")
        assert {d["path"].rsplit("/", 1)[-1] for d in nfo.diff(new)} == {"description",
                                                                        "enabled"}
        assert nfo.rollback(added) is None          # running already is that state
        assert nfo.rollback(changed) is not None    # a rollback can be rolled back
        assert nfo.vims.get("lab")["description"] == "rack 5"
        assert nfo.rollback(added - 1) is not None
        assert nfo.vims.get("lab") is None


def test_revisions_that_are_no_commit_or_no_longer_retained(fresh_served: ServerProcess) -> None:
    with _client(fresh_served) as nfo:
        with pytest.raises(InvalidData) as future:
            nfo.rollback(10_000)
        assert future.value.tag == "invalid-value" and "no revision 10000" in str(future.value)
        assert future.value.app_tag == "nfo-not-a-commit"  # as the diff of such a revision
        with pytest.raises(InvalidData) as never:
            nfo.diff(10_000)
        assert (never.value.status, never.value.app_tag) == (400, "nfo-not-a-commit")
        nfo.vims.add({"name": "early", "type": "nfo-vim:sim"})
        early = nfo.history(limit=1)[0]["revision"]
        gone = compact_past(nfo, early)
        assert gone.app_tag == "nfo-revision-not-retained" and "no longer retained" in str(gone)
        with pytest.raises(InvalidData) as rollback:
            nfo.rollback(early, comment="too late")
        assert rollback.value.app_tag == "nfo-revision-not-retained"
        assert nfo.history(limit=1)[0]["comment"] != "too late"


def test_a_paged_list_sorted_filtered_with_the_remaining_count(fresh_served: ServerProcess) -> None:
    with _client(fresh_served) as nfo:
        nfo.vims.add([{"name": f"v{n}", "type": "nfo-vim:sim", "description": f"{7 - n}"}
                      for n in range(7)])
        assert [v["name"] for v in nfo.vims.list()] == ["local"] + [f"v{n}" for n in range(7)]
        page = nfo.vims.list(limit=3, sort_by="name", direction="backwards",
                             where="starts-with(name, 'v')")
        assert isinstance(page, Page)
        assert [v["name"] for v in page] == ["v6", "v5", "v4"]
        assert (page.remaining, page.next_offset) == (4, 3)
        assert all("@" not in v for v in page)
        rest = nfo.vims.list(offset=page.next_offset, sort_by="name", direction="backwards",
                             where="starts-with(name, 'v')")
        assert [v["name"] for v in rest] == ["v3", "v2", "v1", "v0"] and rest.remaining == 0
        # local has a description too, which sorts after the digits
        by_text = nfo.vims.list(limit=2, sort_by="description", where="description != '7'")
        assert [v["name"] for v in by_text] == ["v6", "v5"] and by_text.remaining == 5
        assert nfo.vims.list(offset=8).entries == []    # the end itself: an empty page
        bound = nfo.vims.list(limit=1, bindings=True)
        assert bound[0].name == "local" and bound.remaining == 7
        with pytest.raises(OutOfRange) as past:
            nfo.vims.list(offset=9)
        assert past.value.status == 416
        assert past.value.app_tag == "ietf-list-pagination:offset-out-of-range"
        with pytest.raises(InvalidData) as bad:
            nfo.vims.list(sort_by="colour")
        assert bad.value.status == 400 and "colour" in str(bad.value)
        assert nfo.instances.list(limit=5) == Page([], 0)


def test_the_asyncio_client_has_them_too(fresh_served: ServerProcess) -> None:
    async def main() -> None:
        cfg = ClientConfig(url=fresh_served.base, user="admin", password=PASSWORD)
        async with AsyncClient(cfg) as nfo:
            await nfo.vims.add({"name": "a", "type": "nfo-vim:sim"}, comment="async")
            [top] = await nfo.history(limit=1)
            assert top["comment"].endswith(": async")
            assert [d["operation"] for d in await nfo.diff(top["revision"])] == ["create"]
            page = await nfo.vims.list(limit=1, sort_by="name", direction="backwards")
            assert [v["name"] for v in page] == ["local"] and page.remaining == 1
            assert await nfo.rollback(top["revision"] - 1) is not None
            assert await nfo.vims.get("a") is None
    asyncio.run(main())
