"""The rules one manifest value must pass: ids safe as file names, http(s) URLs, logo options.

Every check raises `InvalidValue` with a message that names the field and the rule, and shows
at most a short, escaped excerpt of the value (a value may be megabytes long, or not printable).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from typing import Any
from urllib.parse import urljoin, urlsplit

from runner.api.request import CLOTHES_TYPES, LogoRect
from runner.manifest.local import (
    LocalFileError,
    check_bucket_ref,
    is_bucket_url,
    local_path,
    resolve_local,
)

MAX_ID_CHARS = 100
MAX_ID_BYTES = 200
MAX_URL_CHARS = 2048
MAX_LOGO_IMAGE_CHARS = 8 * 1024 * 1024  # the API's own bound on a Base64 image
MAX_RECT_SIDE = 100_000

_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{n}" for p in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")]
)
_UNSAFE_ID_CHARS = set('/\\<>:"|?*')
_URL_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
# The common case, accepted without parsing: http(s), a plain host name, no port, printable ASCII.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?:[/?#][!-~]*)?")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-. +=,@()\[\]{}#~!&'$%^]*")
_CLOTHES_TYPE_KEYS = {re.sub(r"[\s_\-]+", "", t).lower(): t for t in CLOTHES_TYPES}


class InvalidValue(ValueError):
    """A field's value breaks a rule; the message names the field and the rule."""


def require_unicode(field: str, value: str) -> None:
    """Refuse text that cannot be written as UTF-8: a lone surrogate, which JSON can spell
    (`"\\ud800"`) and a non-UTF-8 command-line argument becomes. It would fail later, in the
    database or a file name, far from the line that holds it."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValue(
            f"{field} {short(value)} is not valid Unicode "
            f"(character {exc.start + 1} is a lone surrogate)"
        ) from None


def normalize_base_url(base_url: str) -> str:
    """An http(s) base URL with a trailing slash, so `urljoin` keeps its last segment."""
    base = base_url.strip()
    require_unicode("--base-url", base)
    parts = urlsplit(base)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidValue(f"--base-url {short(base_url)} is not an http(s) URL")
    return base if base.endswith("/") else base + "/"


def normalize_clothes_type(value: str) -> str:
    """`Upper-body`, `Lower-body` or `Dress`, forgiving case and `_`/`-`/space."""
    canonical = _CLOTHES_TYPE_KEYS.get(re.sub(r"[\s_\-]+", "", value).lower())
    if canonical is None:
        raise InvalidValue(f"clothes_type {short(value)} is not one of {', '.join(CLOTHES_TYPES)}")
    return canonical


def check_id(value: str) -> str:
    """The id in NFC form, if it is safe as a file name on Linux, macOS and Windows.

    NFC because "café" typed on one system and on another may differ in bytes (é as one
    code point or as e plus an accent) while naming the same file on macOS.
    """
    ident = value.strip()
    if not ident:
        raise InvalidValue("id is empty")
    if (
        len(ident) <= MAX_ID_CHARS
        and _PLAIN_ID.fullmatch(ident)
        and ".." not in ident
        and not ident.endswith((".", " "))
        and ident.split(".")[0].rstrip(" ").upper() not in _WINDOWS_RESERVED
    ):
        return ident  # printable ASCII: already in NFC
    require_unicode("id", ident)
    ident = unicodedata.normalize("NFC", ident)
    shown = short(ident)
    if len(ident) > MAX_ID_CHARS or len(ident.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidValue(f"id {shown} is longer than {MAX_ID_CHARS} characters")
    bad = sorted({c for c in ident if c in _UNSAFE_ID_CHARS})
    if bad:
        raise InvalidValue(f"id {shown} contains {' '.join(bad)}, not allowed in a file name")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in ident):
        raise InvalidValue(f"id {shown} contains control characters")
    if ".." in ident:
        raise InvalidValue(f"id {shown} contains '..'")
    if ident.startswith("."):
        raise InvalidValue(f"id {shown} starts with '.' (a hidden file)")
    if ident.endswith((".", " ")):
        raise InvalidValue(f"id {shown} ends with '.' or a space")
    if ident.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        raise InvalidValue(f"id {shown} is a reserved file name on Windows")
    return ident


def check_url(field: str, value: str, base_url: str | None) -> str:
    """An absolute http(s) URL; a relative path is resolved against `base_url` if given.
    Without `base_url` a path is a local file, and `s3://bucket/key` an object in a bucket
    (`runner.manifest.local`)."""
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidValue(f"{field} is longer than {MAX_URL_CHARS} characters")
    if _PLAIN_URL.fullmatch(url):
        return url
    require_unicode(field, url)
    shown = short(url)
    if not url.lower().startswith(("http://", "https://")):
        not_http = _not_http(field, url, base_url)
        if not_http is not None:
            return not_http
    if _URL_BAD_CHARS.search(url):
        raise InvalidValue(f"{field} {shown} contains spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidValue(f"{field} {shown} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    is_windows_drive = len(scheme) == 1 and url[1:2] == ":"
    if scheme and not is_windows_drive:
        if scheme not in ("http", "https"):
            raise InvalidValue(f"{field} {shown} is not an http(s) URL")
    else:
        if base_url is None or is_windows_drive or url.startswith("//"):
            raise InvalidValue(
                f"{field} {shown} is not an http(s) URL (a relative path needs --base-url)"
            )
        url = urljoin(base_url, url)
        parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidValue(f"{field} {shown} has an invalid port") from None
    if not parts.hostname:
        raise InvalidValue(f"{field} {shown} has no host name")
    return url


def _not_http(field: str, url: str, base_url: str | None) -> str | None:
    """An object in a bucket or a local file (see `runner.manifest.local`); None for
    anything else, which the URL rules judge."""
    try:
        if is_bucket_url(url):
            return check_bucket_ref(url)
        path = local_path(url, base_url)
        return None if path is None else resolve_local(field, path)
    except LocalFileError as exc:
        raise InvalidValue(f"{field} {short(url)}: {exc}") from None


def short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def text_value(field: str, value: Any) -> str | None:
    """A string value; empty or null means unset."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        raise InvalidValue(f"{field} must be text, not {json.dumps(value)[:40]}")
    value = value.strip()
    require_unicode(field, value)
    return value or None


def whole_number(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValue(f"{field} must be a whole number, not {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", value):
        return int(value)
    raise InvalidValue(f"{field} must be a whole number, not {short(str(value))}")


def logo_add_value(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return int(value.strip().lower() == "true")
    number = whole_number("logo_add", value)
    if number not in (0, 1):
        raise InvalidValue(f"logo_add must be 0 or 1, not {number}")
    return number


def logo_rect_value(value: Any) -> LogoRect | None:
    """`X,Y,Width,Height` as text, a list of four numbers, or an object with those keys."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    numbers: list[Any]
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidValue(f"logo_rect {short(value)} is not valid JSON") from None
    if isinstance(value, str):
        numbers = [p for p in re.split(r"[\s,;]+", value.strip()) if p]
    elif isinstance(value, list):
        numbers = value
    elif isinstance(value, dict):
        keyed = {k.lower(): v for k, v in value.items() if isinstance(k, str)}
        unknown = sorted(set(keyed) - {"x", "y", "width", "height"})
        missing = [k for k in ("x", "y", "width", "height") if k not in keyed]
        if unknown or missing or len(keyed) != len(value):
            raise InvalidValue("logo_rect needs exactly the keys X, Y, Width, Height")
        numbers = [keyed["x"], keyed["y"], keyed["width"], keyed["height"]]
    else:
        raise InvalidValue("logo_rect must be X,Y,Width,Height")
    if len(numbers) != 4:
        raise InvalidValue(f"logo_rect needs 4 numbers (X,Y,Width,Height), got {len(numbers)}")
    x, y, w, h = (whole_number("logo_rect", n) for n in numbers)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or max(x, y, w, h) > MAX_RECT_SIDE:
        raise InvalidValue(f"logo_rect {x},{y},{w},{h}: X and Y must be >= 0, Width and Height > 0")
    return LogoRect(x, y, w, h)


def logo_image_value(value: Any) -> str | None:
    text = text_value("logo_image", value)
    if text is None:
        return None
    if len(text) > MAX_LOGO_IMAGE_CHARS:
        raise InvalidValue("logo_image is larger than 8 MB of Base64")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("logo_image is not valid Base64") from None
    return text
