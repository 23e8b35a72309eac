"""Merging a crowded level in runs (``nfo.schema.data._merge_into``): the same data, in the
same order, with the same flags, as one libyang call over the whole level."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nfo.schema import Fmt, Parse, Schema, Tree, WithDefaults
from nfo.schema import data as data_mod

N = 3 * data_mod.MERGE_RUN + 17


def _docs() -> tuple[dict[str, Any], dict[str, Any]]:
    target = {"nfo-test:top": {
        "name": "t", "tags": [f"g{k}" for k in range(0, N, 3)],
        "sorted": list(range(0, N, 2)),
        "item": [{"name": f"i{k}", "size": k % 900} for k in range(0, N, 2)],
        "pair": [{"a": f"a{k}", "b": k % 100, "v": "old"} for k in range(0, N, 5)]}}
    source = {"nfo-test:top": {
        "count": 9, "tags": [f"g{k}" for k in range(N - 1, -1, -2)],
        "sorted": list(range(N, 0, -3)),
        "item": [{"name": f"i{k}", "size": (k * 7) % 900} for k in range(N - 1, -1, -1)],
        "pair": [{"a": f"a{k}", "b": k % 100, "v": "new"} for k in range(0, N, 3)],
        "state": {"up": True}}}
    return target, source


def _merged(schema: Schema, target: dict[str, Any], source: dict[str, Any]) -> tuple[str, str]:
    with Tree.parse(schema, json.dumps(target), Fmt.JSON, mode=Parse.DATA) as into:
        into.add_defaults()
        src = Tree.parse(schema, json.dumps(source), Fmt.JSON, mode=Parse.DATA)
        into.merge(src)
        return (into.print(Fmt.JSON, with_defaults=WithDefaults.REPORT_ALL_TAGGED),
                into.print(Fmt.JSON))


def test_runs_merge_as_one_call_does(schema: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
    target, source = _docs()
    calls: list[int] = []
    real = data_mod._merge_call

    def counted(tree: Tree, part: Any) -> None:
        calls.append(1)
        real(tree, part)

    monkeypatch.setattr(data_mod, "_merge_call", counted)
    in_runs = _merged(schema, target, source)
    assert len(calls) > 3  # the crowded container went in runs
    monkeypatch.setattr(data_mod, "MERGE_RUN", 10 * N)
    calls.clear()
    whole = _merged(schema, target, source)
    assert len(calls) == 1
    assert in_runs == whole
    doc = json.loads(in_runs[1])["nfo-test:top"]
    assert doc["count"] == 9 and doc["state"] == {"up": True}
    assert len(doc["item"]) == N


def test_states_merge_into_their_entries(schema: Schema) -> None:
    """Instance states (operational data) merged in runs into the configured entries
    they describe, and an entry only the states hold added after them."""
    n = 2 * data_mod.MERGE_RUN + 1
    cfg = {"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"n{k}", "descriptor": "fw"} for k in range(n)]}}
    st = {"nfo-instances:nf-instances": {"nf-instance": [
        {"name": f"n{k}", "state": {"oper-status": "running", "vim-resource-id": f"r{k}"}}
        for k in range(n - 1, -1, -1)] + [{"name": "orphan", "state": {
            "oper-status": "terminating"}}]}}
    with Tree.parse(schema, json.dumps(cfg), Fmt.JSON, mode=Parse.DATA) as into:
        into.merge(Tree.parse(schema, json.dumps(st), Fmt.JSON, mode=Parse.DATA))
        entries = json.loads(into.print(Fmt.JSON))["nfo-instances:nf-instances"]["nf-instance"]
    assert [e["name"] for e in entries] == [f"n{k}" for k in range(n)] + ["orphan"]
    assert all(e["state"]["vim-resource-id"] == f"r{k}" for k, e in enumerate(entries[:n]))
    assert entries[-1] == {"name": "orphan", "state": {"oper-status": "terminating"}}
