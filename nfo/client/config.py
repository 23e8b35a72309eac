"""Where the client finds its server and credentials: flags, then the environment, then
a configuration file (the same for the Python client and the ``nfo`` command line).

The file is TOML, ``$NFO_CONFIG`` or ``~/.config/nfo/config.toml``::

    url = "https://nfo.example.net:8443"
    user = "alice"
    password = "..."          # the file should be readable by its owner only
    ca = "/etc/nfo/ca.pem"    # verify the server with this CA (default: the system's)
    insecure = false          # true: do not verify the server's certificate
    cert = "/home/alice/nfo.pem"      # a client certificate (TLS client authentication)
    key = "/home/alice/nfo-key.pem"   # its private key (else in the cert file)

Environment: ``NFO_URL``, ``NFO_USER``, ``NFO_PASSWORD``, ``NFO_CA``, ``NFO_CERT``,
``NFO_KEY``.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nfo.client.errors import ClientError

__all__ = ["DEFAULT_URL", "ClientConfig", "config_path"]

DEFAULT_URL = "http://127.0.0.1:8080"
_ENV = {"url": "NFO_URL", "user": "NFO_USER", "password": "NFO_PASSWORD", "ca": "NFO_CA",
        "cert": "NFO_CERT", "key": "NFO_KEY"}


def config_path() -> Path:
    env = os.environ.get("NFO_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nfo" / "config.toml"


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: str | None = None
    insecure: bool = False
    cert: str | None = None
    key: str | None = None
    timeout: float = 30.0

    @classmethod
    def resolve(cls, *, file: Path | None = None, env: dict[str, str] | None = None,
                **flags: Any) -> ClientConfig:
        """Flags (those not None) over the environment over the file over defaults."""
        env = dict(os.environ) if env is None else env
        merged: dict[str, Any] = {}
        path = config_path() if file is None else file
        if path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ClientError(f"{path}: {e}") from None
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ClientError(f"{path}: unknown settings {', '.join(unknown)}")
            merged.update(data)
        for name, var in _ENV.items():
            if env.get(var):
                merged[name] = env[var]
        merged.update({k: v for k, v in flags.items() if v is not None})
        return replace(cls(), **merged)

    @property
    def base(self) -> str:
        """The URL without a trailing slash or ``/restconf``."""
        url = self.url.rstrip("/")
        return url[: -len("/restconf")] if url.endswith("/restconf") else url

    def verify(self) -> bool | ssl.SSLContext:
        """What httpx verifies the server with: False, or a context with the CA (the
        system's by default) and the client certificate, if any."""
        if self.insecure and self.cert is None:
            return False
        if self.ca is None and self.cert is None:
            return True
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert is not None:
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as e:
                raise ClientError(f"client certificate {self.cert}: {e}") from None
        return ctx
