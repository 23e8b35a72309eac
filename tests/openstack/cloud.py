"""Connection facts of the local OpenStack cloud that ``tools/openstack start`` prints."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openstack.connection import Connection


@dataclass(frozen=True)
class OpenStackCloud:
    """Password credentials of the admin user and the names of the ready-made resources."""

    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain: str
    project_domain: str
    region: str
    image: str
    flavor: str
    network: str

    @classmethod
    def from_json(cls, text: str) -> OpenStackCloud:
        data: dict[str, Any] = json.loads(text)
        return cls(**{f.name: str(data[f.name]) for f in fields(cls)})

    @classmethod
    def from_state(cls, state: Path) -> OpenStackCloud:
        """The cloud started with ``tools/openstack start --state STATE``."""
        return cls.from_json((state / "cloud.json").read_text())

    def connection(self) -> Connection:
        """A new openstacksdk connection (keystone password auth, project scope)."""
        from openstack.connection import Connection

        return Connection(
            auth={
                "auth_url": self.auth_url,
                "username": self.username,
                "password": self.password,
                "project_name": self.project_name,
                "user_domain_name": self.user_domain,
                "project_domain_name": self.project_domain,
            },
            auth_type="password",
            region_name=self.region,
            interface="public",
        )
