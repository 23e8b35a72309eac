"""An NF's own YANG modules in a context of their own (nfo.schema.nfmodules): building
the set, strict validated parsing with the NF module's error paths, templates, merging,
the edit-config that turns the device's configuration into the desired one (checked by
applying it with nfo's own NETCONF edit semantics), drift lines and the read filter."""

from __future__ import annotations

import gc
import json
import random
import threading
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest

from nfo.errors import DataMissing, InvalidValue, NfoError, OperationFailed, UnknownElement
from nfo.schema import ModuleText, NfModules, Parse, Tree, render
from nfo.schema.edit import apply_edit, validate

NS = "urn:nfo:test:router"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
YANG = "urn:ietf:params:xml:ns:yang:1"
P = "/nfo-test-router:"

ROUTER = """module nfo-test-router {
  yang-version 1;
  namespace "urn:nfo:test:router";
  prefix rt;
  import ietf-inet-types { prefix inet; }
  import nfo-test-types { prefix tt; }
  revision 2026-01-01;

  container system {
    leaf hostname {
      type string { pattern '[a-z][a-z0-9-]*'; length "1..63"; }
    }
    leaf-list dns-server { type inet:ip-address; }
    leaf management-interface {
      type leafref { path "/rt:interfaces/rt:interface/rt:name"; }
    }
    container ntp {
      presence "NTP is enabled";
      leaf enabled { type boolean; default true; }
      list server {
        key address;
        leaf address { type inet:ip-address; }
        leaf prefer { type boolean; default false; }
      }
    }
    leaf uptime { type uint32; config false; }
  }
  container interfaces {
    list interface {
      key name;
      leaf name { type tt:ifname; }
      leaf description { type string; }
      leaf mtu { type uint16 { range "576..9216"; } default 1500; }
      leaf enabled { type boolean; default true; }
      leaf-list address { type string; ordered-by user; }
      must "not(mtu > 1500) or enabled = 'true'" {
        error-message "a jumbo MTU needs the interface enabled";
      }
    }
  }
  list rule {
    key name;
    ordered-by user;
    leaf name { type string; }
    leaf action { type enumeration { enum permit; enum deny; } default permit; }
  }
  container routing {
    list route {
      key prefix;
      ordered-by user;
      leaf prefix { type string; }
      leaf next-hop { type inet:ip-address; mandatory true; }
    }
  }
}
"""

TYPES = """module nfo-test-types {
  namespace "urn:nfo:test:types";
  prefix tt;
  typedef ifname { type string { pattern 'eth[0-9]+'; } }
}
"""

MODULES = [ModuleText("nfo-test-router", ROUTER), ModuleText("nfo-test-types", TYPES)]


@pytest.fixture
def nf() -> NfModules:
    return NfModules.build(MODULES)


def system(inner: str) -> str:
    return f'<system xmlns="{NS}">{inner}</system>'


def interfaces(*entries: str) -> str:
    return f'<interfaces xmlns="{NS}">{"".join(entries)}</interfaces>'


def iface(name: str, inner: str = "") -> str:
    return f"<interface><name>{name}</name>{inner}</interface>"


def routes(*pairs: tuple[str, str]) -> str:
    body = "".join(f"<route><prefix>{p}</prefix><next-hop>{h}</next-hop></route>"
                   for p, h in pairs)
    return f'<routing xmlns="{NS}">{body}</routing>'


@pytest.fixture
def trees(nf: NfModules) -> Iterator[list[Tree]]:
    """Trees a test parses, freed after it."""
    made: list[Tree] = []
    yield made
    for t in made:
        t.free()


def parsed(nf: NfModules, trees: list[Tree], text: str, fmt: str = "xml") -> Tree:
    t = nf.parse(text, fmt)
    trees.append(t)
    return t


# -- building the set -------------------------------------------------------------------


def test_build_lists_the_implemented_modules_and_their_namespaces(nf: NfModules) -> None:
    assert nf.names == ["nfo-test-router", "nfo-test-types"]
    assert nf.namespaces == {"nfo-test-router": NS, "nfo-test-types": "urn:nfo:test:types"}
    assert len(nf.digest) == 64
    # the order the texts come in is not part of the set's identity
    assert NfModules.build(MODULES[::-1]).digest == nf.digest


@pytest.mark.parametrize(("modules", "culprit", "says"), [
    ([ModuleText("nfo-test-router", ROUTER)], "nfo-test-router", '"nfo-test-types" not found'),
    ([ModuleText("nfo-test-router", ROUTER.replace("leaf mtu {", "leaf mtu {{")),
      MODULES[1]], "nfo-test-router", "(line 33)"),
    ([MODULES[0], ModuleText("nfo-test-types", TYPES.replace("typedef", "typedeff"))],
     "nfo-test-types", '"typedeff"'),
    ([ModuleText("nfo-test-router", ROUTER.replace("rt:interface/rt:name", "rt:nope")),
      MODULES[1]], "nfo-test-router", "/nfo-test-router:system/management-interface"),
    ([ModuleText("other-name", ROUTER), MODULES[1]], "other-name", "declares"),
    ([MODULES[1], MODULES[1]], "nfo-test-types", "twice"),
    ([MODULES[0], ModuleText("nfo-test-types", TYPES + "\0")], "nfo-test-types", "NUL"),
])
def test_build_errors_name_the_module(modules: list[ModuleText], culprit: str,
                                      says: str) -> None:
    with pytest.raises(InvalidValue) as err:
        NfModules.build(modules)
    assert err.value.app_tag == "nfo-bad-nf-module"
    assert err.value.info["module"] == culprit
    assert f"module {culprit!r}" in err.value.message and says in err.value.message
    with pytest.raises(InvalidValue, match="at least one"):
        NfModules.build([])


def test_cache_returns_one_object_per_content() -> None:
    a = NfModules.cached(MODULES)
    assert NfModules.cached(list(MODULES)) is a
    other = [MODULES[0], ModuleText("nfo-test-types", TYPES + "\n")]
    assert NfModules.cached(other) is not a
    found: list[NfModules] = []
    threads = [threading.Thread(target=lambda: found.append(NfModules.cached(MODULES)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(f is a for f in found)


def test_a_tree_keeps_its_evicted_context_alive(trees: list[Tree]) -> None:
    first = NfModules.cached(MODULES)
    t = parsed(first, trees, DAY1)
    for i in range(40):  # more sets than the cache holds
        NfModules.cached([MODULES[0], ModuleText("nfo-test-types", TYPES + "\n" * i)])
    assert NfModules.cached(MODULES) is not first
    del first
    gc.collect()
    assert "r1" in t.print("xml")


# -- parsing ---------------------------------------------------------------------------


DAY1 = system("<hostname>r1</hostname><dns-server>192.0.2.53</dns-server>"
              "<management-interface>eth0</management-interface>") + interfaces(
    iface("eth0", "<mtu>9000</mtu>"), iface("eth1"))


def test_parse_xml_adds_defaults_and_prints_without_them(nf: NfModules,
                                                         trees: list[Tree]) -> None:
    t = parsed(nf, trees, DAY1)
    assert t.node(f"{P}interfaces/interface[name='eth1']/mtu").value == "1500"  # type: ignore[union-attr]
    plain = nf.print(t)
    assert "1500" not in plain and "9000" in plain
    assert "<mtu>1500</mtu>" in nf.print(t, defaults=True)


def test_parse_json_is_the_same_configuration(nf: NfModules, trees: list[Tree]) -> None:
    doc = {"nfo-test-router:system": {"hostname": "r1", "dns-server": ["192.0.2.53"],
                                      "management-interface": "eth0"},
           "nfo-test-router:interfaces": {"interface": [{"name": "eth0", "mtu": 9000},
                                                        {"name": "eth1"}]}}
    j = parsed(nf, trees, json.dumps(doc), "json")
    assert nf.digest_of(j) == nf.digest_of(parsed(nf, trees, DAY1))
    assert json.loads(nf.print(j, "json")) == doc


def test_empty_text_is_the_empty_configuration(nf: NfModules, trees: list[Tree]) -> None:
    for text, fmt in (("", "xml"), ("  \n", "json"), ("{}", "json")):
        assert nf.print(parsed(nf, trees, text, fmt)) == ""


@pytest.mark.parametrize(("text", "cls", "path", "says"), [
    (interfaces(iface("eth0", "<mtu>100</mtu>")), InvalidValue,
     f"{P}interfaces/interface[name='eth0']/mtu", "Unsatisfied range"),
    (system("<hostname>R1</hostname>"), InvalidValue, f"{P}system/hostname", "pattern"),
    (interfaces(iface("wlan0")), InvalidValue, f"{P}interfaces/interface/name", "pattern"),
    (interfaces(iface("eth0", "<mtu>9000</mtu><enabled>false</enabled>")), OperationFailed,
     f"{P}interfaces/interface[name='eth0']", "a jumbo MTU needs the interface enabled"),
    (system("<management-interface>eth9</management-interface>"), DataMissing,
     f"{P}system/management-interface", "eth9"),
    (system("<hostname>r1</hostname><colour>red</colour>"), UnknownElement,
     f"{P}system", '"colour"'),
    (system("<uptime>5</uptime>"), InvalidValue, f"{P}system/uptime", "state"),
    (routes(("10.0.0.0/8", "")).replace("<next-hop></next-hop>", ""), DataMissing,
     f"{P}routing/route/next-hop", "Mandatory"),
])
def test_invalid_data_is_refused_with_the_nf_modules_path(
        nf: NfModules, text: str, cls: type[NfoError], path: str, says: str) -> None:
    with pytest.raises(cls) as err:
        nf.parse(text, what="day-1 configuration")
    assert err.value.path == path
    assert err.value.message.startswith("day-1 configuration: ") and says in err.value.message


def test_a_device_configuration_breaking_a_constraint_can_be_edited(
        nf: NfModules, trees: list[Tree]) -> None:
    broken = (system("<management-interface>eth9</management-interface>")
              + interfaces(iface("eth0", "<mtu>9000</mtu><enabled>false</enabled>")))
    with pytest.raises(NfoError):
        nf.parse(broken)
    cur = nf.parse(broken, validate=False)
    trees.append(cur)
    assert cur.node(f"{P}interfaces/interface[name='eth0']/mtu").value == "9000"  # type: ignore[union-attr]
    want = parsed(nf, trees, interfaces(iface("eth0")))
    edit = nf.edit(cur, want)
    assert operation(edit, "management-interface") == operation(edit, "mtu") == ["delete"]
    with applied(nf, cur, edit) as after:
        assert nf.digest_of(after) == nf.digest_of(want)
    # what no schema node or type allows is refused all the same
    with pytest.raises(UnknownElement):
        nf.parse(system("<colour>red</colour>"), validate=False)
    with pytest.raises(InvalidValue):
        nf.parse(interfaces(iface("eth0", "<mtu>1</mtu>")), validate=False)


def test_trees_of_another_set_are_refused(nf: NfModules, trees: list[Tree]) -> None:
    other = NfModules.build(MODULES)
    t = parsed(other, trees, DAY1)
    with pytest.raises(InvalidValue, match="another module set"):
        nf.edit(t, t)
    with pytest.raises(InvalidValue, match="another module set"):
        nf.merged(parsed(nf, trees, ""), t)


def test_malformed_text_is_refused(nf: NfModules) -> None:
    with pytest.raises(NfoError, match="malformed"):
        nf.parse('{"nfo-test-router:system": {', "json")
    with pytest.raises(NfoError):
        nf.parse("<system", "xml")


# -- templates ---------------------------------------------------------------------------


NASTY = """<&"'> {x} \\ é"""


def test_render_escapes_xml_text_and_attributes(nf: NfModules, trees: list[Tree]) -> None:
    tpl = interfaces(iface("{param:if}", "<description>{param:d}</description>"
                                         "<mtu>{param:mtu}</mtu>"))
    text = render(tpl, "xml", {"if": "eth3", "d": NASTY, "mtu": "1400"})
    t = parsed(nf, trees, text)
    base = f"{P}interfaces/interface[name='eth3']"
    assert t.node(f"{base}/description").value == NASTY  # type: ignore[union-attr]
    assert t.node(f"{base}/mtu").value == "1400"  # type: ignore[union-attr]
    attr = render('<a b="{param:d}"/>', "xml", {"d": NASTY})
    assert ElementTree.fromstring(attr).get("b") == NASTY


def test_render_escapes_json_strings_and_bare_values(nf: NfModules, trees: list[Tree]) -> None:
    tpl = ('{"nfo-test-router:interfaces": {"interface": [{"name": "{param:if}", '
           '"description": "{{literal}} {param:d}", "mtu": {param:mtu}}]}}')
    text = render(tpl, "json", {"if": "eth3", "d": NASTY, "mtu": "1400"})
    entry = json.loads(text)["nfo-test-router:interfaces"]["interface"][0]
    assert entry == {"name": "eth3", "description": "{literal} " + NASTY, "mtu": 1400}
    t = parsed(nf, trees, text, "json")
    assert t.node(f"{P}interfaces/interface[name='eth3']/mtu").value == "1400"  # type: ignore[union-attr]
    # a bare value that is no JSON literal becomes a string, never JSON structure
    assert json.loads(render('{"a": {param:v}}', "json", {"v": '1, "b": 2'})) == {
        "a": '1, "b": 2'}


def test_render_braces_and_unknown_names() -> None:
    assert render("<a>{{x}} {param:p}</a>", "xml", {"p": "v"}) == "<a>{x} v</a>"
    with pytest.raises(InvalidValue, match="'missing'") as err:
        render("<a>{param:missing}</a>", "xml", {"p": "v"})
    assert err.value.info == {"parameter": "missing"}
    with pytest.raises(InvalidValue, match="missing"):
        render('{"a": {param:missing}}', "json", {})
    with pytest.raises(InvalidValue, match="unknown placeholder"):
        render("<a>{prm:p}</a>", "xml", {"p": "v"})
    with pytest.raises(InvalidValue, match="U\\+0001"):
        render("<a>{param:p}</a>", "xml", {"p": "\x01"})
    with pytest.raises(InvalidValue, match="encoding"):
        render("a: {param:p}", "yaml", {"p": "v"})


# -- merging ---------------------------------------------------------------------------


def test_merged_overlay_wins_and_adds_entries(nf: NfModules, trees: list[Tree]) -> None:
    base = parsed(nf, trees, DAY1)
    day2 = parsed(nf, trees, system("<hostname>r2</hostname>") + interfaces(
        iface("eth1", "<mtu>1600</mtu>"), iface("eth7")))
    m = nf.merged(base, day2)
    trees.append(m)
    want = parsed(nf, trees, system(
        "<hostname>r2</hostname><dns-server>192.0.2.53</dns-server>"
        "<management-interface>eth0</management-interface>") + interfaces(
        iface("eth0", "<mtu>9000</mtu>"), iface("eth1", "<mtu>1600</mtu>"), iface("eth7")))
    assert nf.digest_of(m) == nf.digest_of(want)
    # the overlay's implicit mtu default did not replace eth0's 9000; inputs unchanged
    assert "r1" in nf.print(base) and "eth0" not in nf.print(day2)


def test_merged_result_is_validated(nf: NfModules, trees: list[Tree]) -> None:
    base = parsed(nf, trees, DAY1)
    day2 = parsed(nf, trees, interfaces(iface("eth0", "<enabled>false</enabled>")))
    with pytest.raises(OperationFailed, match="jumbo") as err:
        nf.merged(base, day2)
    assert err.value.path == f"{P}interfaces/interface[name='eth0']"


# -- edit and its round trip -----------------------------------------------------------


def applied(nf: NfModules, current: Tree, edit: str) -> Tree:
    """``current`` after the edit, applied with nfo's own NETCONF edit semantics."""
    work = current.dup()
    if edit:
        with Tree.parse(nf, edit, "xml", mode=Parse.CONFIG) as e:
            apply_edit(nf, work, e)
    validate(nf, work)
    return work


def edit_of(nf: NfModules, trees: list[Tree], current: str, desired: str) -> str:
    """The edit between two configurations; asserts that it makes the one the other."""
    cur, want = parsed(nf, trees, current), parsed(nf, trees, desired)
    edit = nf.edit(cur, want)
    if edit:
        ElementTree.fromstring(f"<config>{edit}</config>")
    with applied(nf, cur, edit) as after:
        assert nf.digest_of(after) == nf.digest_of(want), (edit, nf.print(after))
        assert nf.differences(after, want) == []
    return edit


def elements(edit: str) -> list[ElementTree.Element]:
    return list(ElementTree.fromstring(f"<config>{edit}</config>").iter())


def operation(edit: str, tag: str) -> list[str | None]:
    return [e.get(f"{{{NC}}}operation") for e in elements(edit) if e.tag == f"{{{NS}}}{tag}"]


def test_edit_creates_and_modifies_by_merging(nf: NfModules, trees: list[Tree]) -> None:
    edit = edit_of(nf, trees, system("<hostname>a</hostname>"),
                   system("<hostname>b</hostname><dns-server>192.0.2.1</dns-server>")
                   + interfaces(iface("eth0", "<description>up</description>")))
    assert edit == (f'<system xmlns="{NS}"><hostname>b</hostname><dns-server>192.0.2.1'
                    f'</dns-server></system><interfaces xmlns="{NS}"><interface><name>eth0'
                    "</name><description>up</description></interface></interfaces>")


def test_edit_deletes_leaves_values_entries_and_containers(nf: NfModules,
                                                           trees: list[Tree]) -> None:
    edit = edit_of(
        nf, trees,
        system("<hostname>a</hostname><dns-server>192.0.2.1</dns-server>"
               "<dns-server>192.0.2.2</dns-server><ntp><server><address>192.0.2.9</address>"
               "</server></ntp>") + interfaces(iface("eth0"), iface("eth1")),
        system("<dns-server>192.0.2.2</dns-server>") + interfaces(iface("eth1")))
    assert operation(edit, "hostname") == ["delete"]
    assert operation(edit, "ntp") == ["delete"]
    assert operation(edit, "interface") == ["delete"]
    assert operation(edit, "dns-server") == ["delete"]
    assert "192.0.2.1" in edit and "192.0.2.2" not in edit and "eth1" not in edit
    assert f'xmlns:nc="{NC}"' in edit


def test_edit_ignores_default_only_differences(nf: NfModules, trees: list[Tree]) -> None:
    explicit = interfaces(iface("eth0", "<mtu>1500</mtu><enabled>true</enabled>"))
    assert edit_of(nf, trees, explicit, interfaces(iface("eth0"))) == ""
    assert edit_of(nf, trees, interfaces(iface("eth0")), explicit) == ""
    # back to an implicit default: the explicit value goes
    edit = edit_of(nf, trees, interfaces(iface("eth0", "<mtu>9000</mtu>")),
                   interfaces(iface("eth0")))
    assert operation(edit, "mtu") == ["delete"]
    # a created entry's implicit defaults are not sent
    edit = edit_of(nf, trees, "", interfaces(iface("eth0")))
    assert "mtu" not in edit and "enabled" not in edit


def test_edit_of_identical_configurations_is_empty(nf: NfModules, trees: list[Tree]) -> None:
    assert edit_of(nf, trees, DAY1, DAY1) == ""
    assert edit_of(nf, trees, "", "") == ""
    # the order of an ordered-by-system list is the device's business
    assert edit_of(nf, trees, interfaces(iface("eth0"), iface("eth1")),
                   interfaces(iface("eth1"), iface("eth0"))) == ""


def inserts(edit: str, tag: str) -> list[tuple[str | None, str | None, str | None]]:
    """(text or key, yang:insert, its yang:value or yang:key) of each ``tag`` element."""
    return [((e.text or "").strip() or e.findtext(f"{{{NS}}}name"), e.get(f"{{{YANG}}}insert"),
             e.get(f"{{{YANG}}}value") or e.get(f"{{{YANG}}}key"))
            for e in elements(edit) if e.tag == f"{{{NS}}}{tag}"]


def test_edit_replaces_a_reordered_list_with_its_parent(nf: NfModules,
                                                        trees: list[Tree]) -> None:
    a, b, c, d = (("10.0.0.0/8", "192.0.2.1"), ("10.1.0.0/16", "192.0.2.1"),
                  ("10.2.0.0/16", "192.0.2.1"), ("10.3.0.0/16", "192.0.2.1"))
    edit = edit_of(nf, trees, routes(a, b, c), routes(c, (a[0], "192.0.2.2"), d, b))
    assert operation(edit, "routing") == ["replace"]
    assert [e.findtext(f"{{{NS}}}prefix") for e in elements(edit)
            if e.tag == f"{{{NS}}}route"] == [c[0], a[0], d[0], b[0]]
    assert "192.0.2.2" in edit and "insert" not in edit
    # an entry added at the end, or one removed, needs no replacing
    assert "replace" not in edit_of(nf, trees, routes(a), routes(a, b))
    assert "replace" not in edit_of(nf, trees, routes(a, b, c), routes(a, c))


def test_edit_replaces_a_reordered_leaf_list_with_its_parent(nf: NfModules,
                                                             trees: list[Tree]) -> None:
    def addrs(*values: str, mtu: str = "") -> str:
        return interfaces(iface("eth0", mtu + "".join(f"<address>{v}</address>"
                                                      for v in values)), iface("eth1"))
    edit = edit_of(nf, trees, addrs("x", "y", "z", mtu="<mtu>9000</mtu>"), addrs("z", "x"))
    assert operation(edit, "interface") == ["replace"]  # eth0 only: eth1 is unchanged
    assert inserts(edit, "address") == [("z", None, None), ("x", None, None)]
    assert "mtu" not in edit  # back to its default: left out of the replacement
    assert "replace" not in edit_of(nf, trees, addrs("x"), addrs("x", "y"))


def test_edit_reorders_a_top_level_list_by_key(nf: NfModules, trees: list[Tree]) -> None:
    def rules(*names: str) -> str:
        return "".join(f'<rule xmlns="{NS}"><name>{n}</name></rule>' for n in names)
    edit = edit_of(nf, trees, rules("p", "q", "r"), rules("r", "p", "q"))
    assert inserts(edit, "rule") == [("r", "before", "[name='p']"), ("p", "after", "[name='r']"),
                                     ("q", "after", "[name='p']")]


def random_config(rng: random.Random) -> str:
    names = rng.sample([f"eth{i}" for i in range(5)], rng.randint(0, 4))
    entries = []
    for n in names:
        inner = ""
        if rng.random() < 0.3:
            inner += f"<description>{rng.choice(['up', 'down', 'x'])}</description>"
        mtu = rng.choice([None, 1500, 1400, 9000])
        if mtu is not None:
            inner += f"<mtu>{mtu}</mtu>"
        if rng.random() < 0.3 and mtu != 9000:
            inner += "<enabled>false</enabled>"
        elif rng.random() < 0.2:
            inner += "<enabled>true</enabled>"
        for addr in rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)):
            inner += f"<address>{addr}</address>"
        entries.append(iface(n, inner))
    sys_inner = ""
    if rng.random() < 0.7:
        sys_inner += f"<hostname>{rng.choice(['r1', 'r2'])}</hostname>"
    for dns in rng.sample(["192.0.2.1", "192.0.2.2", "192.0.2.3"], rng.randint(0, 3)):
        sys_inner += f"<dns-server>{dns}</dns-server>"
    if names and rng.random() < 0.5:
        sys_inner += f"<management-interface>{rng.choice(names)}</management-interface>"
    if rng.random() < 0.5:
        servers = "".join(
            f"<server><address>192.0.2.{i}</address>"
            f"{'<prefer>true</prefer>' if rng.random() < 0.3 else ''}</server>"
            for i in rng.sample(range(10, 14), rng.randint(0, 3)))
        enabled = rng.choice(["", "<enabled>false</enabled>", "<enabled>true</enabled>"])
        sys_inner += f"<ntp>{enabled}{servers}</ntp>"
    rules = "".join(f'<rule xmlns="{NS}"><name>{n}</name>'
                    f"{'<action>deny</action>' if rng.random() < 0.3 else ''}</rule>"
                    for n in rng.sample("pqrst", rng.randint(0, 5)))
    prefixes = rng.sample([f"10.{i}.0.0/16" for i in range(5)], rng.randint(0, 5))
    hops = [(p, rng.choice(["192.0.2.1", "192.0.2.2"])) for p in prefixes]
    return (system(sys_inner) if sys_inner else "") + (
        interfaces(*entries) if entries else "") + (routes(*hops) if hops else "") + rules


def test_edit_round_trips_over_random_configurations(nf: NfModules) -> None:
    rng = random.Random(16)
    for _ in range(150):
        trees: list[Tree] = []
        try:
            edit_of(nf, trees, random_config(rng), random_config(rng))
        finally:
            for t in trees:
                t.free()


# -- drift lines and the read filter ----------------------------------------------------


def test_differences_are_short_lines(nf: NfModules, trees: list[Tree]) -> None:
    cur = parsed(nf, trees, system("<hostname>a</hostname>") + interfaces(
        iface("eth0", "<description>" + "d" * 100 + "</description>"), iface("eth9"))
        + routes(("x", "192.0.2.1"), ("y", "192.0.2.1")))
    want = parsed(nf, trees, system("<hostname>b</hostname>") + interfaces(
        iface("eth0", "<description>short</description>"), iface("eth1"))
        + routes(("y", "192.0.2.1"), ("x", "192.0.2.1")))
    lines = nf.differences(cur, want)
    assert lines == [
        f"modified {P}system/hostname: 'a' -> 'b'",
        f"unexpected {P}interfaces/interface[name='eth9']",
        f"modified {P}interfaces/interface[name='eth0']/description: '{'d' * 40}...' -> 'short'",
        f"missing {P}interfaces/interface[name='eth1']",
        f"out of order {P}routing/route[prefix='y']",
    ]
    assert nf.differences(cur, want, limit=2) == [*lines[:2], "... and 3 more"]
    assert nf.differences(want, want) == []
    empty = parsed(nf, trees, "")
    assert nf.differences(empty, parsed(nf, trees, system("<hostname>a</hostname>"))) == [
        f"missing {P}system/hostname: 'a'"]


def test_filter_names_each_top_level_config_node(nf: NfModules) -> None:
    xml = nf.filter_xml()
    tops = ElementTree.fromstring(f'<filter xmlns="{NC}" type="subtree">{xml}</filter>')
    assert [(e.tag, len(e)) for e in tops] == [
        (f"{{{NS}}}system", 0), (f"{{{NS}}}interfaces", 0), (f"{{{NS}}}rule", 0),
        (f"{{{NS}}}routing", 0)]
