"""Test helper: make a server's commit log forget a revision, as it does in production
once enough has been committed after it."""

from __future__ import annotations

import pytest

from nfo.client import Client, InvalidData


def compact_past(nfo: Client, revision: int) -> InvalidData:
    """Commit catalog entries in batches of over 1 MiB until ``revision`` is no longer
    retained: the server writes a snapshot once the commits since the last one are as large
    as it (and 1 MiB at least), keeps three and the commits from the oldest of them on.
    Returns the server's refusal of a diff of it."""
    text = "x" * 4000
    for batch in range(16):
        nfo.catalog.add([{"id": f"big-{batch}-{n}", "description": text,
                          "vim-types": ["nfo-vim:sim"]} for n in range(300)])
        try:
            nfo.diff(revision)
        except InvalidData as e:
            return e
    pytest.fail(f"revision {revision} is still retained")
