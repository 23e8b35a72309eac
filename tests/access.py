"""Access control set-ups shared by the front-end tests."""

from __future__ import annotations

from nfo.datastore import Datastore
from nfo.datastore.users import ADMIN, UserStore


def permit_everyone(ds: Datastore) -> None:
    """No rule applies, as on a server without ietf-netconf-acm (credentials stay
    hidden): for tests of protocol behaviour, not of access control."""
    ds.nacm.enforced = False


async def admins(ds: Datastore, *accounts: tuple[str, str]) -> UserStore:
    """A user store with ``accounts`` (name, password) in the ``admin`` group, whose
    rule-list permits everything."""
    users = UserStore(ds)
    await users.ensure_admin_rules()
    for name, password in accounts:
        await users.add(name, password, groups=[ADMIN])
    return users
