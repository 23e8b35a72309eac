"""A plain edit (:attr:`Tree.plain`, :func:`plain_text`): text that proves no node
carries metadata and no value an apostrophe lets a bulk apply skip checking each entry
for them.  The flag must never be set where it does not hold, and an edit applied with
it must give what the same edit gives without it: the same data, the same changes in
the same order, the same refusal."""

from __future__ import annotations

import asyncio

import pytest

from nfo.errors import NfoError
from nfo.schema import Fmt, Parse, Schema, Tree
from nfo.schema.changes import Run
from nfo.schema.data import plain_text
from nfo.schema.edit import apply_edit, validate

NS = "urn:nfo:test"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def top(body: str, attrs: str = "") -> str:
    return f'<top xmlns="{NS}"{attrs}>{body}</top>'


def pair(a: str, b: int, v: str | None = None) -> str:
    return f"<pair><a>{a}</a><b>{b}</b>" + (f"<v>{v}</v>" if v else "") + "</pair>"


@pytest.mark.parametrize("text", [
    top(""),
    top(pair("x", 1)),
    '<?xml version="1.0" encoding="UTF-8"?>\n' + top(pair("x", 1)),
    f'<top xmlns="{NS}" xmlns:nc="{NC}"><pair><a>x</a><b>1</b></pair></top>',
    f'<top\n  xmlns = "{NS}">{pair("x", 1)}</top>',
    top(pair('say "hi"', 1)),
    top(pair("a&quot;b", 1)),
    top("<tags>x</tags>" * 3),
])
def test_plain_xml(text: str) -> None:
    assert plain_text(text.encode(), Fmt.XML)


@pytest.mark.parametrize("text", [
    top(pair("x", 1), f' xmlns:nc="{NC}" nc:operation="create"'),
    f'<top xmlns="{NS}" xmlns:nc="{NC}"><pair nc:operation="delete"><a>x</a><b>1</b>'
    "</pair></top>",
    top(pair("x", 1), ' a = "b"'),
    top(pair("x", 1), ' t:xmlns="b"'),  # a prefixed attribute named xmlns
    top(pair("x", 1), f' xmlns:nc="{NC}" xmlns:y="a=b"'),  # "=" in a namespace
    top(pair("it's", 1)),
    top(pair("it&apos;s", 1)),
    top(pair("it&#39;s", 1)),
    top(pair("it&#x27;s", 1)),
    top(pair("1+1=2", 1)),  # an "=" outside any declaration: not looked into
    top("<!-- a comment -->" + pair("x", 1)),
    top("<pair><a><![CDATA[x]]></a><b>1</b></pair>"),
    '<?xml version="1.0"?><?pi x="y"?>' + top(pair("x", 1)),
    f"<top xmlns='{NS}'>{pair('x', 1)}</top>",
])
def test_not_plain_xml(text: str) -> None:
    assert not plain_text(text.encode(), Fmt.XML)


@pytest.mark.parametrize(("text", "plain"), [
    ('{"nfo-test:top": {"pair": [{"a": "x", "b": 1}]}}', True),
    ('{"nfo-test:top": {"pair": [{"a": "x", "b": 1, "@": {"ietf-netconf:operation": '
     '"create"}}]}}', False),
    ('{"nfo-test:top": {"pair": [{"a": "it\'s", "b": 1}]}}', False),
    ('{"nfo-test:top": {"pair": [{"a": "x\\u0027", "b": 1}]}}', False),
    ('{"nfo-test:top": {"\\u0040": {}}}', False),
])
def test_json(text: str, plain: bool) -> None:
    assert plain_text(text.encode(), Fmt.JSON) is plain


def test_the_flag_follows_the_text_and_is_cleared_by_changes(schema: Schema) -> None:
    with Tree.parse(schema, top(pair("x", 1)), Fmt.XML) as t:
        assert t.plain
        t.parse_under(None, top(pair("y", 1), f' xmlns:nc="{NC}" nc:operation="merge"'),
                      Fmt.XML)
        assert not t.plain
    with Tree.parse(schema, top(pair("x", 1)), Fmt.XML) as t:
        t.nodes()  # handed out: they could be given metadata
        assert not t.plain
    with Tree.parse(schema, top(pair("x", 1), f' xmlns:nc="{NC}" nc:operation="merge"'),
                    Fmt.XML) as t:
        assert not t.plain
    assert not Tree(schema).plain


BASE = top(pair("old", 1) + "<thing><id>t</id><label>L</label><needed>n</needed></thing>"
           + "<item><name>i1</name></item>")

EDITS = [
    # new entries of several lists, their keys in no order, leaf-lists
    top("".join(pair(f"k{(i * 7) % 40}", i % 3, f"v{i}") for i in range(40))
        + "<tags>z</tags><tags>a</tags><sorted>3</sorted><sorted>-1</sorted>"
        + "".join(f"<thing><id>n{i}</id><needed>x</needed></thing>" for i in range(5))),
    # an existing entry amid new ones, a changed value
    top(pair("a", 1) + pair("old", 1, "changed") + pair("b", 1) + pair("c", 1)),
    # the same entry twice in one run, and apart
    top(pair("d", 1) + pair("d", 1)),
    top(pair("d", 1) + "<thing><id>u</id><needed>x</needed></thing>" + pair("d", 1)),
    # keys holding a double quote (plain) and a value holding markup
    top(pair('q"1', 1, "a&lt;b&gt;c&amp;d") + pair('"', 2)),
    # ordered-by user entries: never a run
    top("<item><name>i2</name><size>3</size></item><item><name>i0</name></item>"),
    # entries failing validation: mandatory, unique, must, the choice's two cases
    top("<thing><id>m</id></thing>"),
    top("<thing><id>u1</id><label>L</label><needed>n</needed></thing>"),
    top("<item><name>big</name><size>5000</size></item>"),
    top(pair("e", 1) + "<radius>1</radius><side>2</side>"),
    # a presence container, a choice case replacing the other
    top("<extra><level>5</level><only-when>w</only-when></extra><side>4</side>"),
]


def outcome(schema: Schema, base: str | None, text: str, dop: str,
            plain: bool) -> tuple[object, ...]:
    with Tree.parse(schema, base or "", Fmt.XML) as t, \
            Tree.parse(schema, text, Fmt.XML) as e:
        validate(schema, t)
        assert e.plain
        e.plain = plain
        try:
            changes = apply_edit(schema, t, e, dop, bulk=True)
            validate(schema, t, changes)
        except NfoError as err:
            return ("error", type(err), err.tag, err.app_tag, err.message, err.path)
        return tuple(changes.materialize()), t.print(Fmt.XML)


@pytest.mark.parametrize("text", EDITS)
@pytest.mark.parametrize("dop", ["merge", "replace"])
@pytest.mark.parametrize("base", [BASE, None])
def test_a_plain_edit_gives_what_it_gives_checked(schema: Schema, base: str | None,
                                                  text: str, dop: str) -> None:
    assert outcome(schema, base, text, dop, True) == outcome(schema, base, text, dop, False)


def test_keys_no_path_could_name_are_still_refused(schema: Schema) -> None:
    text = top(pair("a'b&quot;c", 1))
    with Tree.parse(schema, BASE, Fmt.XML) as t, Tree.parse(schema, text, Fmt.XML) as e:
        assert not e.plain
        with pytest.raises(NfoError, match="holds both"):
            apply_edit(schema, t, e, bulk=True)


async def test_free_soon_empties_at_once_and_frees_after_the_step(
        schema: Schema, monkeypatch: pytest.MonkeyPatch) -> None:
    freed: list[int] = []
    real = Tree.free

    def free(self: Tree) -> None:
        if not self.is_empty():
            freed.append(1)
        real(self)

    monkeypatch.setattr(Tree, "free", free)
    t = Tree.parse(schema, top(pair("x", 1)), Fmt.XML)
    t.free_soon()
    assert t.is_empty() and not freed
    await asyncio.sleep(0)
    assert freed == [1]


def test_free_soon_without_a_loop_frees_at_once(schema: Schema) -> None:
    t = Tree.parse(schema, top(pair("x", 1)), Fmt.XML)
    t.free_soon()
    assert t.is_empty()


def test_a_text_parsed_in_its_own_order_is_not_plain(schema: Schema) -> None:
    """A plain edit's runs end where libyang's schema order says (no entry walked):
    text read in the order written (``LYD_PARSE_ORDERED``) does not promise it."""
    with Tree.parse(schema, top(pair("x", 1)), Fmt.XML, mode=Parse.VALIDATED) as t:
        assert not t.plain


def test_a_run_counts_its_entries_when_asked(schema: Schema) -> None:
    with Tree.parse(schema, BASE, Fmt.XML) as t, \
            Tree.parse(schema, top("".join(pair(f"k{i}", 1) for i in range(7))
                                   + "<thing><id>z</id><needed>n</needed></thing>"),
                       Fmt.XML) as e:
        assert e.plain
        runs = [i for i in apply_edit(schema, t, e, bulk=True).items() if isinstance(i, Run)]
        assert [r.count for r in runs] == [7, 1]
