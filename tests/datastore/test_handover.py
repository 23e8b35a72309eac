"""The errors a replica sends back for a call handed over to it come back as they were
raised: class (or the nearest one built like NfoError), tags, path and every rpc-error."""

from __future__ import annotations

import json

from nfo.datastore.handover import error_from_json, error_to_json
from nfo.errors import (
    ErrorDetail,
    InvalidValue,
    NfoError,
    OperationFailed,
    StorageUnavailable,
    Veto,
)


def round_trip(e: NfoError) -> NfoError:
    return error_from_json(json.loads(json.dumps(error_to_json(e))))


def test_an_error_comes_back_with_its_class_and_every_rpc_error() -> None:
    e = InvalidValue("bad", path="/a:b", app_tag="nfo-x", info={"k": "v"},
                     errors=[ErrorDetail("data-missing", "also", path="/a:c")])
    back = round_trip(e)
    assert type(back) is InvalidValue
    assert back.errors == e.errors
    assert type(round_trip(Veto("no"))) is Veto


def test_an_error_built_otherwise_comes_back_as_its_nearest_plain_class() -> None:
    back = round_trip(StorageUnavailable("etcd is away"))
    assert type(back) is OperationFailed
    assert (back.tag, back.app_tag, back.message) == (
        "operation-failed", "nfo-storage-unavailable", "etcd is away")
    assert type(error_from_json({"class": "NoSuchError", "errors": [
        {"tag": "in-use", "message": "m", "error_type": "protocol", "path": None,
         "app_tag": None, "info": {}}]})) is NfoError
