"""``nfo history``, ``nfo diff``, ``nfo rollback``, ``--comment`` and paged ``list``
driven as a user would, against a real ``nfo serve`` of its own per test (a rollback
changes the whole configuration)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from nfo.client import Client, ClientConfig
from tests.cli.test_remote import nfo
from tests.fuzz.server import PASSWORD, ServerProcess
from tests.history import compact_past


def _client(srv: ServerProcess) -> Client:
    return Client(ClientConfig(url=srv.base, user="admin", password=PASSWORD))


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    err = r.stderr
    assert err.startswith("nfo: error: ") and err.count("\n") == 1, err
    return err


def test_history_diff_and_rollback(fresh_served: ServerProcess, tmp_path: Path) -> None:
    srv = fresh_served
    (tmp_path / "vims.yaml").write_text("- {name: lab, type: nfo-vim:sim, "
                                        "description: rack 4}\n")
    r = nfo(srv, "vim", "add", "-f", str(tmp_path / "vims.yaml"), "--comment", "the lab VIM")
    assert r.returncode == 0, r.stderr
    with _client(srv) as c:
        c.vims.update("lab", {"description": "rack 5"})
    r = nfo(srv, "history", "--limit", "2")
    assert r.returncode == 0, r.stderr
    head, newest, added = r.stdout.splitlines()
    assert head.split() == ["REVISION", "TIME", "(UTC)", "USER", "COMMENT", "CHANGES"]
    assert newest.split()[3:5] == ["admin", "restconf"]
    assert added.split()[3] == "admin" and "create-vim: the lab VIM" in added
    assert added.split()[-1] == "1"
    rows = json.loads(nfo(srv, "history", "--json").stdout)
    rev_added, rev_changed = rows[1]["revision"], rows[0]["revision"]
    assert rows[1]["comment"].endswith(": the lab VIM") and rev_changed > rev_added
    older = json.loads(nfo(srv, "history", "--before", str(rev_added), "--json").stdout)
    assert older and all(x["revision"] < rev_added for x in older)

    r = nfo(srv, "diff", str(rev_changed))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == [
        "modify", "/nfo-vim:vims/vim[name='lab']/description", "rack", "4", "->", "rack", "5"]
    r = nfo(srv, "diff", str(rev_added))
    assert "create" in r.stdout and '"description":"rack 4"' in r.stdout
    [change] = json.loads(nfo(srv, "diff", str(rev_added), "--json").stdout)
    assert change["data"]["nfo-vim:vim"][0]["name"] == "lab"

    r = nfo(srv, "rollback", str(rev_added), "--comment", "rack 5 was wrong")
    assert r.returncode == 0, r.stderr
    new = rev_changed + 1
    assert r.stdout == f"rolled back to revision {rev_added}: new revision {new}\n"
    assert json.loads(nfo(srv, "vim", "show", "lab", "--json").stdout)["description"] == \
        "rack 4"
    top = json.loads(nfo(srv, "history", "--limit", "1", "--json").stdout)[0]
    assert (top["revision"], top["comment"]) == (new, f"rollback to {rev_added}: "
                                                      "rack 5 was wrong")
    r = nfo(srv, "rollback", str(rev_added))
    assert r.returncode == 0 and r.stdout.startswith("nothing to do")
    r = nfo(srv, "rollback", str(rev_changed), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"revision": new + 1}


def test_errors_are_one_line_and_a_non_zero_exit(fresh_served: ServerProcess) -> None:
    srv = fresh_served
    r = nfo(srv, "diff", "999")
    assert r.returncode == 1
    assert "revision 999 is not a commit of running" in _one_error_line(r)
    r = nfo(srv, "rollback", "999")
    assert r.returncode == 1 and "no revision 999" in _one_error_line(r)
    for bad in (("diff", "x"), ("history", "--limit", "0"), ("rollback",)):
        r = nfo(srv, *bad)
        assert r.returncode == 2 and "usage: nfo" in r.stderr, bad
    r = nfo(srv, "history", "--limit", "1001")
    assert r.returncode == 1 and "invalid-value" in _one_error_line(r)
    with _client(srv) as c:
        c.vims.add({"name": "early", "type": "nfo-vim:sim"})
        early = c.history(limit=1)[0]["revision"]
        compact_past(c, early)
    r = nfo(srv, "rollback", str(early))
    assert r.returncode == 1
    assert f"revision {early} is no longer retained" in _one_error_line(r)
    assert "nfo-revision-not-retained" in r.stderr
    r = nfo(srv, "history", "--limit", "1", "--json")
    assert "rollback" not in json.loads(r.stdout)[0]["comment"]


def test_a_paged_list(fresh_served: ServerProcess) -> None:
    srv = fresh_served
    with _client(srv) as c:
        c.vims.add([{"name": f"v{n}", "type": "nfo-vim:sim"} for n in range(5)])
    r = nfo(srv, "vim", "list", "--sort-by", "name", "--reverse", "--limit", "2",
            "--where", "starts-with(name, 'v')")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [x.split()[0] for x in lines[1:3]] == ["v4", "v3"]
    assert lines[3] == "1-2 shown, 3 more (next page: --offset 2)"
    r = nfo(srv, "vim", "list", "--sort-by", "name", "--reverse", "--limit", "2",
            "--offset", "2", "--where", "starts-with(name, 'v')", "--json")
    assert [v["name"] for v in json.loads(r.stdout)] == ["v2", "v1"]
    assert r.stderr == "nfo: 3-4 shown, 1 more (next page: --offset 4)\n"
    r = nfo(srv, "vim", "list", "--offset", "4")
    assert [x.split()[0] for x in r.stdout.splitlines()[1:]] == ["v3", "v4"]   # no note
    r = nfo(srv, "vim", "list", "--offset", "7")
    assert r.returncode == 1 and "offset-out-of-range" in _one_error_line(r)
    r = nfo(srv, "vim", "list", "--sort-by", "colour")
    assert r.returncode == 1 and "colour" in _one_error_line(r)
    r = nfo(srv, "vim", "list", "--limit", "0")
    assert r.returncode == 2 and "not a positive number" in r.stderr
    assert len(json.loads(nfo(srv, "vim", "list", "--json").stdout)) == 6
