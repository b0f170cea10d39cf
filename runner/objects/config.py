"""Which store to talk to and as whom: endpoint, region, addressing style, credentials.

Reading this needs no client library, so the CLI can check its options before the optional
extra is imported.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from runner.credentials import CredentialsError, load_credentials

Addressing = Literal["auto", "path", "virtual"]
ADDRESSING_CHOICES: tuple[Addressing, ...] = ("auto", "path", "virtual")
DEFAULT_REGION = "us-east-1"
# COS's S3-compatible endpoints: https://cos.<region>.myqcloud.com
_COS_HOST = re.compile(r"cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com")


@dataclass(frozen=True)
class StaticKeys:
    """A key pair handed to the client; repr never shows the secret."""

    access_key: str
    secret_key: str
    token: str | None
    source: str

    def __repr__(self) -> str:
        return f"StaticKeys(access_key={self.access_key[:4]}****, source={self.source!r})"


@dataclass(frozen=True)
class ObjectStoreConfig:
    """`endpoint` None means AWS S3 itself; `region` None means "from the endpoint or the chain"."""

    endpoint: str | None = None
    region: str | None = None
    addressing: Addressing = "auto"

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"--s3-endpoint {self.endpoint!r} is not an http(s) URL")
            if parts.path not in ("", "/") or parts.query:
                raise ValueError(f"--s3-endpoint {self.endpoint!r}: give only scheme, host, port")
        if self.addressing not in ADDRESSING_CHOICES:
            raise ValueError(f"addressing must be one of {', '.join(ADDRESSING_CHOICES)}")

    @property
    def host(self) -> str | None:
        return urlsplit(self.endpoint).hostname if self.endpoint else None

    @property
    def is_cos(self) -> bool:
        return bool(self.host and _COS_HOST.fullmatch(self.host))

    def resolved_region(self) -> str | None:
        """The region to sign for: explicit, else COS's from its host name, else the chain's."""
        if self.region:
            return self.region
        match = _COS_HOST.fullmatch(self.host or "")
        return match["region"] if match else None

    def resolved_addressing(self) -> Literal["path", "virtual"] | None:
        """COS wants virtual-hosted; a store on an IP address or localhost only answers
        path-style; anything else is left to the client's own rule (None)."""
        if self.addressing != "auto":
            return self.addressing
        if self.is_cos:
            return "virtual"
        host = self.host
        if host is None:
            return None
        if host == "localhost" or _is_ip(host):
            return "path"
        return None

    def static_keys(self, env: Mapping[str, str] | None = None) -> StaticKeys | None:
        """The Tencent pair for a COS endpoint (COS accepts it on its S3 API); None means the
        standard AWS chain (environment, shared files, instance role) decides."""
        if not self.is_cos:
            return None
        env = os.environ if env is None else env
        try:
            creds = load_credentials(env=env)
        except CredentialsError:
            return None
        return StaticKeys(creds.secret_id, creds.secret_key, creds.token, creds.source)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
