"""Authentication as clients meet it on both front ends, against real servers on 127.0.0.1
(uvicorn with httpx, asyncssh with ncclient) sharing one datastore and one user store:
the password minimum of ``set-password``."""

from __future__ import annotations

import json

from ncclient.xml_ import to_ele

from nfo.datastore.users import ADMIN
from tests.protocol.test_access import JSON, PW, Env, env, restconf_error  # noqa: F401

USERS_NS = "urn:nfo:users"


def set_password_rpc(user: str, password: str) -> str:
    return (f'<action xmlns="urn:ietf:params:xml:ns:yang:1"><users xmlns="{USERS_NS}"><user>'
            f"<name>{user}</name><set-password><password>{password}</password></set-password>"
            "</user></users></action>")


async def test_set_password_refuses_short_passwords_on_both_front_ends(env: Env) -> None:  # noqa: F811
    for short in ("x", "seven-7", "\u00e9" * 7):
        async with env.http(ADMIN) as c:
            r = await c.post("/restconf/data/nfo-users:users/user=noc/set-password",
                             content=json.dumps({"nfo-users:input": {"password": short}}),
                             headers={"Content-Type": JSON})
        assert r.status_code == 400, r.text
        err = restconf_error(r)
        assert err["error-tag"] == "invalid-value"
        assert err["error-message"] == "a password is 8 to 1024 characters long"
        assert short not in r.text
        nc_err = await env.nc_error(ADMIN, lambda m, p=short: m.dispatch(
            to_ele(set_password_rpc("noc", p))))
        assert nc_err.tag == "invalid-value"
        assert nc_err.message == "a password is 8 to 1024 characters long"
        assert short not in nc_err.xml
    assert env.users.verify("noc", PW)  # unchanged
    async with env.http(ADMIN) as c:
        r = await c.post("/restconf/data/nfo-users:users/user=noc/set-password",
                         content=json.dumps({"nfo-users:input": {"password": "eight-88"}}),
                         headers={"Content-Type": JSON})
        assert r.status_code == 204, r.text
    assert env.users.verify("noc", "eight-88")
