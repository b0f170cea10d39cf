"""Tencent Cloud credentials, found the way the official SDKs find them.

Order: the `TENCENTCLOUD_SECRET_ID` / `TENCENTCLOUD_SECRET_KEY` variables (plus our own
optional `TENCENTCLOUD_SESSION_TOKEN`), else a section of `~/.tencentcloud/credentials`.
The secret key is never part of a repr, a log line or an exception text.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
PROFILE_PATH = Path("~/.tencentcloud/credentials")


class CredentialsError(Exception):
    """No usable credentials; the message says both ways to provide them."""


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "environment"

    def __str__(self) -> str:
        return f"Credentials(secret_id={self.secret_id!r}, source={self.source!r})"


def _missing(profile: str, path: Path) -> CredentialsError:
    return CredentialsError(
        f"No Tencent Cloud credentials: set {ENV_SECRET_ID} and {ENV_SECRET_KEY} "
        f"(optionally {ENV_SESSION_TOKEN}), or put secret_id and secret_key in the "
        f"[{profile}] section of {path}."
    )


def load_credentials(
    profile: str = "default",
    env: Mapping[str, str] | None = None,
    profile_path: Path | None = None,
) -> Credentials:
    """Find credentials or raise `CredentialsError` naming both ways to give them."""
    env = os.environ if env is None else env
    secret_id = env.get(ENV_SECRET_ID, "").strip()
    secret_key = env.get(ENV_SECRET_KEY, "").strip()
    token = env.get(ENV_SESSION_TOKEN, "").strip() or None
    if secret_id and secret_key:
        return Credentials(secret_id, secret_key, token, source="environment")

    path = (profile_path or PROFILE_PATH).expanduser()
    if path.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise CredentialsError(
                f"{path} is not a valid credentials file: {exc.message}"
            ) from None
        if parser.has_section(profile):
            section = parser[profile]
            secret_id = section.get("secret_id", "").strip()
            secret_key = section.get("secret_key", "").strip()
            if secret_id and secret_key:
                return Credentials(
                    secret_id,
                    secret_key,
                    section.get("token", "").strip() or token,
                    source=f"{path} [{profile}]",
                )
    raise _missing(profile, path)
