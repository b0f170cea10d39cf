"""Tencent Cloud credentials, found the way the official SDKs find them.

The SDK's default chain: the `TENCENTCLOUD_SECRET_ID` / `TENCENTCLOUD_SECRET_KEY` variables,
else a section of the first credentials file that exists, `~/.tencentcloud/credentials` then
`/etc/tencentcloud/credentials`. A profile named explicitly skips the environment: naming one
is a choice, the environment may be left over from another shell. The token comes from
`TENCENTCLOUD_SESSION_TOKEN` or `TENCENTCLOUD_SECURITY_TOKEN` (the name Tencent's tools use).
(CVM instance roles and OIDC, the SDK's last two links, are not read yet.)

The secret key is never part of a repr, a log line or an exception text; errors about a
credentials file name the file and a line number, never a line's content.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
ENV_SECURITY_TOKEN = "TENCENTCLOUD_SECURITY_TOKEN"
ENV_REGION = "TENCENTCLOUD_REGION"
PROFILE_PATH = Path("~/.tencentcloud/credentials")
SYSTEM_PROFILE_PATH = Path("/etc/tencentcloud/credentials")
DEFAULT_PROFILE = "default"


class CredentialsError(Exception):
    """No usable credentials; the message says what is missing and where."""


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "environment"

    def __str__(self) -> str:
        return f"Credentials(secret_id={self.secret_id!r}, source={self.source!r})"


def mask(secret: str) -> str:
    """Enough of an id to tell two apart, never enough to use it."""
    if len(secret) <= 8:
        return "****"
    return f"{secret[:4]}****{secret[-4:]}"


def load_credentials(
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
    profile_paths: Sequence[Path] | None = None,
) -> Credentials:
    """Find credentials or raise `CredentialsError` saying which piece is missing.

    `profile` None means "not chosen": the environment first, then the `[default]` section.
    `profile_paths` replaces the two standard files (tests point it at temporary ones).
    """
    env = os.environ if env is None else env
    paths = [p.expanduser() for p in (profile_paths or (PROFILE_PATH, SYSTEM_PROFILE_PATH))]
    token = _env_token(env)
    half_set: str | None = None
    if profile is None:
        secret_id = env.get(ENV_SECRET_ID, "").strip()
        secret_key = env.get(ENV_SECRET_KEY, "").strip()
        if secret_id and secret_key:
            return Credentials(secret_id, secret_key, token, source="environment")
        if secret_id or secret_key:
            have, lack = (
                (ENV_SECRET_ID, ENV_SECRET_KEY) if secret_id else (ENV_SECRET_KEY, ENV_SECRET_ID)
            )
            half_set = f"{have} is set but {lack} is not"

    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        if profile is not None:
            raise CredentialsError(
                f"--profile {profile}: no credentials file: "
                f"create {_or(paths)} with a [{profile}] section."
            )
        lead = f"{half_set}; " if half_set else "No Tencent Cloud credentials: "
        raise CredentialsError(
            f"{lead}set both {ENV_SECRET_ID} and {ENV_SECRET_KEY}, or put secret_id and "
            f"secret_key in the [{DEFAULT_PROFILE}] section of {_or(paths)}."
        )
    creds = _from_file(path, profile or DEFAULT_PROFILE, token, half_set)
    if half_set:
        log.warning("%s: ignored, using %s.", half_set, creds.source)
    return creds


def _env_token(env: Mapping[str, str]) -> str | None:
    for name in (ENV_SESSION_TOKEN, ENV_SECURITY_TOKEN):
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _or(paths: Sequence[Path]) -> str:
    return " or ".join(str(p) for p in paths)


def _from_file(path: Path, profile: str, token: str | None, half_set: str | None) -> Credentials:
    parser = _parse(path)
    if not parser.has_section(profile):
        sections = ", ".join(f"[{s}]" for s in parser.sections()) or "none"
        hint = f" ({half_set})" if half_set else ""
        raise CredentialsError(f"{path} has no [{profile}] section (sections: {sections}){hint}.")
    section = parser[profile]
    secret_id = section.get("secret_id", "").strip()
    secret_key = section.get("secret_key", "").strip()
    missing = [
        name for name, value in (("secret_id", secret_id), ("secret_key", secret_key)) if not value
    ]
    if missing:
        raise CredentialsError(
            f"The [{profile}] section of {path} (line {_section_line(path, profile)}) "
            f"has no {' and no '.join(missing)}."
        )
    return Credentials(
        secret_id,
        secret_key,
        section.get("token", "").strip() or token,
        source=f"{path} [{profile}]",
    )


def _parse(path: Path) -> configparser.ConfigParser:
    # No interpolation: a '%' in a secret must not become an error that quotes it.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise CredentialsError(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise CredentialsError(_describe_parse_error(path, exc)) from None
    return parser


def _describe_parse_error(path: Path, exc: configparser.Error) -> str:
    """configparser's own messages quote the offending line, which may hold a secret."""
    line: int | None
    if isinstance(exc, configparser.MissingSectionHeaderError):
        what, line = "a setting comes before any [section] header", exc.lineno
    elif isinstance(exc, configparser.DuplicateSectionError):
        what, line = "a [section] appears twice", exc.lineno
    elif isinstance(exc, configparser.DuplicateOptionError):
        what, line = "a setting appears twice in one section", exc.lineno
    elif isinstance(exc, configparser.ParsingError) and exc.errors:
        what, line = "the line is not `name = value`", exc.errors[0][0]
    else:
        what, line = "it is not an INI file", None
    at = f" line {line}" if line is not None else ""
    return f"{path}{at} is malformed: {what}."


def _section_line(path: Path, profile: str) -> int:
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if text.strip() == f"[{profile}]":
                return number
    return 0
