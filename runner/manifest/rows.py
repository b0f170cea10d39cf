"""One manifest row: its fields, their aliases, and the rules every value must pass."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from runner.api.request import (
    CLOTHES_TYPES,
    RSP_IMG_TYPES,
    ChangeClothesRequest,
    LogoParam,
    LogoRect,
)

# Canonical field names (snake_case). A column or JSON key matches a field when it is equal
# after lower-casing and dropping `_`, `-` and spaces, so `model_url`, `ModelUrl`, `MODEL-URL`
# and `Model URL` all name the same field.
FIELDS = (
    "id",
    "model_url",
    "clothes_url",
    "clothes_type",
    "logo_add",
    "logo_url",
    "logo_image",
    "logo_rect",
    "logo_param",
    "rsp_img_type",
)
REQUIRED_FIELDS = ("model_url", "clothes_url", "clothes_type")

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


def field_key(name: str) -> str:
    """The comparison key of a column name: lower case, without `_`, `-` and spaces."""
    return re.sub(r"[\s_\-]+", "", name).lower()


_FIELD_BY_KEY = {field_key(f): f for f in FIELDS}


def field_for(name: str) -> str | None:
    """The canonical field a column or JSON key names, or None when it names none."""
    return _FIELD_BY_KEY.get(field_key(name))


@dataclass(frozen=True)
class Problem:
    """Why one line of a manifest cannot be queued."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ManifestRow:
    """A valid manifest row, normalised: absolute http(s) URLs, canonical clothes type."""

    line: int
    id: str
    model_url: str
    clothes_url: str
    clothes_type: str
    logo_add: int | None = None
    logo_url: str | None = None
    logo_image: str | None = None
    logo_rect: LogoRect | None = None
    rsp_img_type: str | None = None
    id_derived: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The optional API settings that are set, as stored in the `jobs.options` column."""
        options: dict[str, Any] = {}
        if self.logo_add is not None:
            options["logo_add"] = self.logo_add
        if self.logo_url is not None:
            options["logo_url"] = self.logo_url
        if self.logo_image is not None:
            options["logo_image"] = self.logo_image
        if self.logo_rect is not None:
            r = self.logo_rect
            options["logo_rect"] = {"x": r.x, "y": r.y, "width": r.width, "height": r.height}
        if self.rsp_img_type is not None:
            options["rsp_img_type"] = self.rsp_img_type
        return options

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.model_url, self.clothes_url, self.clothes_type, self.options)


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dedupe_key(
    model_url: str, clothes_url: str, clothes_type: str, options: Mapping[str, Any]
) -> str:
    """sha256 hex naming the picture a request produces: equal keys give the same image.

    `rsp_img_type` only changes how the image is delivered, so it is left out, and an unset
    `logo_add` counts as the API's default of 1.
    """
    picture = {k: v for k, v in options.items() if k != "rsp_img_type"}
    picture.setdefault("logo_add", 1)
    return hashlib.sha256(_canonical([model_url, clothes_url, clothes_type, picture])).hexdigest()


def derived_id(
    model_url: str, clothes_url: str, clothes_type: str, options: Mapping[str, Any]
) -> str:
    """The id of a row that has none: stable across resubmits, from the whole row's content."""
    digest = hashlib.sha256(_canonical([model_url, clothes_url, clothes_type, dict(options)]))
    return "auto-" + digest.hexdigest()[:16]


def build_request(
    model_url: str,
    clothes_url: str,
    clothes_type: str,
    options: Mapping[str, Any],
    *,
    rsp_img_type_default: str,
) -> ChangeClothesRequest:
    """The API request for a stored row; the row's `rsp_img_type` beats the default."""
    rect = options.get("logo_rect")
    logo_rect = (
        LogoRect(int(rect["x"]), int(rect["y"]), int(rect["width"]), int(rect["height"]))
        if rect
        else None
    )
    logo_param = None
    if options.get("logo_url") or options.get("logo_image") or logo_rect:
        logo_param = LogoParam(
            logo_url=options.get("logo_url"),
            logo_image=options.get("logo_image"),
            logo_rect=logo_rect,
        )
    logo_add = options.get("logo_add")
    return ChangeClothesRequest(
        model_url=model_url,
        clothes_url=clothes_url,
        clothes_type=clothes_type,
        logo_add=int(logo_add) if logo_add is not None else None,
        logo_param=logo_param,
        rsp_img_type=options.get("rsp_img_type") or rsp_img_type_default,
    )


class InvalidValue(ValueError):
    """A field's value breaks a rule; the message names the field and the rule."""


def normalize_base_url(base_url: str) -> str:
    """An http(s) base URL with a trailing slash, so `urljoin` keeps its last segment."""
    base = base_url.strip()
    parts = urlsplit(base)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidValue(f"--base-url {base_url!r} is not an http(s) URL")
    return base if base.endswith("/") else base + "/"


def normalize_clothes_type(value: str) -> str:
    """`Upper-body`, `Lower-body` or `Dress`, forgiving case and `_`/`-`/space."""
    canonical = _CLOTHES_TYPE_KEYS.get(re.sub(r"[\s_\-]+", "", value).lower())
    if canonical is None:
        raise InvalidValue(f"clothes_type {_short(value)} is not one of {', '.join(CLOTHES_TYPES)}")
    return canonical


def check_id(value: str) -> str:
    """The id itself, if it is safe as a file name on Linux, macOS and Windows."""
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
        return ident
    shown = _short(ident)
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
    """An absolute http(s) URL; a relative path is resolved against `base_url` if given."""
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        raise InvalidValue(f"{field} is longer than {MAX_URL_CHARS} characters")
    if _PLAIN_URL.fullmatch(url):
        return url
    shown = _short(url)
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


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _text(field: str, value: Any) -> str | None:
    """A string value; empty or null means unset."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        raise InvalidValue(f"{field} must be text, not {json.dumps(value)[:40]}")
    value = value.strip()
    return value or None


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValue(f"{field} must be a whole number, not {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", value):
        return int(value)
    raise InvalidValue(f"{field} must be a whole number, not {_short(str(value))}")


def _logo_add(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return int(value.strip().lower() == "true")
    number = _int("logo_add", value)
    if number not in (0, 1):
        raise InvalidValue(f"logo_add must be 0 or 1, not {number}")
    return number


def _logo_rect(value: Any) -> LogoRect | None:
    """`X,Y,Width,Height` as text, a list of four numbers, or an object with those keys."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    numbers: list[Any]
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidValue(f"logo_rect {_short(value)} is not valid JSON") from None
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
    x, y, w, h = (_int("logo_rect", n) for n in numbers)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or max(x, y, w, h) > MAX_RECT_SIDE:
        raise InvalidValue(f"logo_rect {x},{y},{w},{h}: X and Y must be >= 0, Width and Height > 0")
    return LogoRect(x, y, w, h)


def _logo_image(value: Any) -> str | None:
    text = _text("logo_image", value)
    if text is None:
        return None
    if len(text) > MAX_LOGO_IMAGE_CHARS:
        raise InvalidValue("logo_image is larger than 8 MB of Base64")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("logo_image is not valid Base64") from None
    return text


def _expand_logo_param(raw: dict[str, Any]) -> None:
    """Move a `LogoParam` object's members into the flat logo_* fields."""
    param = raw.pop("logo_param", None)
    if param is None or (isinstance(param, str) and not param.strip()):
        return
    if isinstance(param, str):
        try:
            param = json.loads(param)
        except ValueError:
            raise InvalidValue("logo_param is not a valid JSON object") from None
    if not isinstance(param, dict):
        raise InvalidValue("logo_param must be an object with LogoUrl, LogoImage, LogoRect")
    for key, value in param.items():
        name = field_for(key) if isinstance(key, str) else None
        if name not in ("logo_url", "logo_image", "logo_rect"):
            raise InvalidValue(f"logo_param has an unknown member {_short(str(key))}")
        if raw.get(name) not in (None, ""):
            raise InvalidValue(f"{name} is given both in logo_param and on its own")
        raw[name] = value


def validate_row(line: int, raw: dict[str, Any], base_url: str | None) -> ManifestRow | Problem:
    """Check one row (canonical field names to values) and normalise it; never raises."""
    errors: list[str] = []
    values: dict[str, Any] = {}
    raw = dict(raw)
    if base_url is not None and not base_url.endswith("/"):
        base_url += "/"
    try:
        _expand_logo_param(raw)
    except InvalidValue as exc:
        errors.append(str(exc))

    def attempt(name: str, check: Any, *args: Any) -> None:
        try:
            values[name] = check(*args)
        except InvalidValue as exc:
            errors.append(str(exc))

    for name in ("model_url", "clothes_url"):
        try:
            text = _text(name, raw.get(name))
            if text is None:
                errors.append(f"{name} is missing")
            else:
                values[name] = check_url(name, text, base_url)
        except InvalidValue as exc:
            errors.append(str(exc))
    try:
        kind = _text("clothes_type", raw.get("clothes_type"))
        if kind is None:
            errors.append("clothes_type is missing")
        else:
            values["clothes_type"] = normalize_clothes_type(kind)
    except InvalidValue as exc:
        errors.append(str(exc))

    attempt("logo_add", _logo_add, raw.get("logo_add"))
    attempt("logo_rect", _logo_rect, raw.get("logo_rect"))
    attempt("logo_image", _logo_image, raw.get("logo_image"))
    try:
        logo_url = _text("logo_url", raw.get("logo_url"))
        values["logo_url"] = None if logo_url is None else check_url("logo_url", logo_url, base_url)
    except InvalidValue as exc:
        errors.append(str(exc))
    try:
        rsp = _text("rsp_img_type", raw.get("rsp_img_type"))
        if rsp is not None and rsp.lower() not in RSP_IMG_TYPES:
            raise InvalidValue(
                f"rsp_img_type {_short(rsp)} is not one of {', '.join(RSP_IMG_TYPES)}"
            )
        values["rsp_img_type"] = rsp.lower() if rsp else None
    except InvalidValue as exc:
        errors.append(str(exc))
    try:
        ident = _text("id", raw.get("id") if not isinstance(raw.get("id"), int) else str(raw["id"]))
        values["id"] = None if ident is None else check_id(ident)
    except InvalidValue as exc:
        errors.append(str(exc))

    has_logo = values.get("logo_url") or values.get("logo_image") or values.get("logo_rect")
    if values.get("logo_url") and values.get("logo_image"):
        errors.append("give logo_url or logo_image, not both")
    if values.get("logo_rect") and not (values.get("logo_url") or values.get("logo_image")):
        errors.append("logo_rect needs logo_url or logo_image")
    if has_logo and values.get("logo_add") == 0:
        errors.append("a custom logo is given but logo_add is 0")

    if errors:
        return Problem(line, "; ".join(errors))
    row = ManifestRow(
        line=line,
        id=values["id"] or "",
        model_url=values["model_url"],
        clothes_url=values["clothes_url"],
        clothes_type=values["clothes_type"],
        logo_add=values["logo_add"],
        logo_url=values["logo_url"],
        logo_image=values["logo_image"],
        logo_rect=values["logo_rect"],
        rsp_img_type=values["rsp_img_type"],
    )
    if not row.id:
        ident = derived_id(row.model_url, row.clothes_url, row.clothes_type, row.options)
        row = dataclasses.replace(row, id=ident, id_derived=True)
    return row
