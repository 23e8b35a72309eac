"""The one error table and its encoders, and the protocol value formats."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from nfo.errors import (
    DataExists,
    DataMissing,
    ErrorDetail,
    InvalidValue,
    NfoError,
    OperationFailed,
    PreconditionFailed,
    ResourceDenied,
    StorageCorrupt,
    StorageFull,
    Throttled,
    Veto,
)
from nfo.protocol.errors import (
    RESTCONF_NS,
    HttpError,
    errors_xml,
    http_headers,
    http_status,
    restconf_errors,
    rpc_errors,
    xml_text,
)
from nfo.protocol.formats import datastore, format_time, parse_time, read_source
from nfo.protocol.paths import xml_instance_id, xpath_from_xml

NS = {"nfo-test": "urn:nfo:test", "other": "urn:other"}


@pytest.mark.parametrize(("err", "status"), [
    (InvalidValue("x"), 400),
    (DataExists("x"), 409),
    (DataMissing("x"), 409),
    (OperationFailed("x"), 500),
    (OperationFailed("must", app_tag="must-violation"), 400),
    (OperationFailed("own", app_tag="size-too-big"), 400),
    (Veto("no"), 409),
    (PreconditionFailed("changed"), 412),
    (HttpError(404, "none", tag="invalid-value"), 404),
    (NfoError("x", tag="operation-not-supported"), 501),
    (NfoError("x", tag="access-denied"), 403),
    (NfoError("x", tag="no-such-tag"), 500),
    (ResourceDenied("x"), 409),
    (Throttled("too many", retry_after=7), 429),
    (StorageFull("the disk is full"), 507),
    (StorageCorrupt("damaged"), 500),
])
def test_status_table(err: NfoError, status: int) -> None:
    assert http_status(err) == status


def test_headers_that_go_with_a_status() -> None:
    assert http_headers(Throttled("too many", retry_after=7)) == {"Retry-After": "7"}
    assert http_headers(Throttled("too many", retry_after=0)) == {"Retry-After": "1"}
    assert http_headers(HttpError(405, "no", headers={"Allow": "GET"})) == {"Allow": "GET"}
    assert http_headers(InvalidValue("x")) == {}
    body = json.loads(restconf_errors(Throttled("too many", retry_after=7,
                                                app_tag="nfo-login-throttled"), True))
    assert body["ietf-restconf:errors"]["error"] == [{
        "error-type": "protocol", "error-tag": "resource-denied",
        "error-app-tag": "nfo-login-throttled", "error-message": "too many"}]


def test_restconf_and_netconf_bodies_carry_the_same_fields() -> None:
    err = OperationFailed("size <must> & be < 1000\x01", path="/nfo-test:top/item[name='a']/size",
                          app_tag="size-too-big", info={"bad-element": "size", "xml-bad": "x"})
    j = json.loads(restconf_errors(err, True, NS.get))
    (item,) = j["ietf-restconf:errors"]["error"]
    assert item == {"error-type": "application", "error-tag": "operation-failed",
                    "error-app-tag": "size-too-big",
                    "error-path": "/nfo-test:top/item[name='a']/size",
                    "error-message": "size <must> & be < 1000\x01",
                    "error-info": {"bad-element": "size", "xml-bad": "x"}}
    x = ET.fromstring(restconf_errors(err, False, NS.get))
    assert x.tag == f"{{{RESTCONF_NS}}}errors"
    e = x.find(f"{{{RESTCONF_NS}}}error")
    assert e is not None
    fields = {c.tag.split("}")[1]: (c.text or "") for c in e}
    assert fields["error-tag"] == "operation-failed" and fields["error-app-tag"] == "size-too-big"
    assert fields["error-message"] == "size <must> & be < 1000?"
    assert fields["error-path"] == "/nfo-test:top/nfo-test:item[nfo-test:name='a']/nfo-test:size"
    assert "error-severity" not in fields
    base = "urn:ietf:params:xml:ns:netconf:base:1.0"
    nc = ET.fromstring(f'<r xmlns="{base}">{rpc_errors(err, NS.get)}</r>')
    (rpc_error,) = list(nc)
    ncf = {c.tag.split("}")[1]: (c.text or "") for c in rpc_error}
    assert ncf["error-severity"] == "error"
    for k in ("error-type", "error-tag", "error-app-tag", "error-path", "error-message"):
        assert ncf[k] == fields[k], k
    info = rpc_error.find("{urn:ietf:params:xml:ns:netconf:base:1.0}error-info")
    assert info is not None and [c.tag.split("}")[1] for c in info] == ["bad-element"]


def test_errors_element_without_namespace_and_several_errors() -> None:
    details = [ErrorDetail("invalid-value", "a"), ErrorDetail("data-missing", "b", path="/x:y")]
    text = errors_xml(details, None, xmlns=None)
    assert text.startswith("<errors><error>") and text.count("<error>") == 2
    assert xml_text('a"<&>\ud800') == "a&quot;&lt;&amp;&gt;?"


def test_instance_identifier() -> None:
    text, decls = xml_instance_id("/nfo-test:top/item[name='a/b[c]']/other:x/y[.='1']",
                                  NS.get)
    assert text == ("/nfo-test:top/nfo-test:item[nfo-test:name='a/b[c]']/other:x/other:y"
                    "[.='1']")
    assert decls == NS
    text, decls = xml_instance_id("/unknown:a/b", NS.get)
    assert text == "/unknown:a/b" and decls == {}


def test_xpath_from_xml() -> None:
    scope = {"t": "urn:nfo:test", "o": "urn:other"}
    mods = {v: k for k, v in NS.items()}
    assert xpath_from_xml("/t:top/t:item[t:name='x:y'] | /o:a", scope.get, mods.get) == (
        "/nfo-test:top/nfo-test:item[nfo-test:name='x:y'] | /other:a")
    assert xpath_from_xml("/z:a", scope.get, mods.get) == "/z:a"
    assert xpath_from_xml("count(/t:top/*) > 1", scope.get, mods.get) == (
        "count(/nfo-test:top/*) > 1")


def test_times() -> None:
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"
    assert parse_time("1970-01-01T00:00:01Z") == 1.0
    assert parse_time("1970-01-01t01:00:01.5+01:00") == 1.5
    for bad in ("1970-01-01T00:00:00", "yesterday", "1970-13-01T00:00:00Z"):
        with pytest.raises(InvalidValue):
            parse_time(bad)


def test_datastore_names() -> None:
    assert datastore("ietf-datastores:intended") == "intended"
    assert read_source("intended") == "running" and read_source("candidate") == "candidate"
    with pytest.raises(InvalidValue, match="unknown datastore"):
        datastore("running")
    with pytest.raises(InvalidValue, match="unknown datastore"):
        datastore("other:running")
    with pytest.raises(InvalidValue, match="cannot be used here"):
        datastore("ietf-datastores:operational", ("running", "candidate", "startup"))
