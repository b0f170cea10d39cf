"""One manifest row: its fields, their aliases, and how a row's values are checked together."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.api.request import RSP_IMG_TYPES, ChangeClothesRequest, LogoParam, LogoRect
from runner.manifest.keys import dedupe_key, derived_id
from runner.manifest.values import (
    InvalidValue,
    check_id,
    check_url,
    logo_add_value,
    logo_image_value,
    logo_rect_value,
    normalize_clothes_type,
    short,
    text_value,
)

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
    # Written by `export --as-manifest` beside the inputs, so the file goes straight back in;
    # read and ignored.
    "error_code",
    "error_message",
)
REQUIRED_FIELDS = ("model_url", "clothes_url", "clothes_type")


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
    id: str | None = None  # the row's id, when it has a valid one

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
            raise InvalidValue(f"logo_param has an unknown member {short(str(key))}")
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
            text = text_value(name, raw.get(name))
            if text is None:
                errors.append(f"{name} is missing")
            else:
                values[name] = check_url(name, text, base_url)
        except InvalidValue as exc:
            errors.append(str(exc))
    try:
        kind = text_value("clothes_type", raw.get("clothes_type"))
        if kind is None:
            errors.append("clothes_type is missing")
        else:
            values["clothes_type"] = normalize_clothes_type(kind)
    except InvalidValue as exc:
        errors.append(str(exc))

    attempt("logo_add", logo_add_value, raw.get("logo_add"))
    attempt("logo_rect", logo_rect_value, raw.get("logo_rect"))
    attempt("logo_image", logo_image_value, raw.get("logo_image"))
    try:
        logo_url = text_value("logo_url", raw.get("logo_url"))
        values["logo_url"] = None if logo_url is None else check_url("logo_url", logo_url, base_url)
    except InvalidValue as exc:
        errors.append(str(exc))
    try:
        rsp = text_value("rsp_img_type", raw.get("rsp_img_type"))
        if rsp is not None and rsp.lower() not in RSP_IMG_TYPES:
            raise InvalidValue(
                f"rsp_img_type {short(rsp)} is not one of {', '.join(RSP_IMG_TYPES)}"
            )
        values["rsp_img_type"] = rsp.lower() if rsp else None
    except InvalidValue as exc:
        errors.append(str(exc))
    try:
        ident = text_value(
            "id", raw.get("id") if not isinstance(raw.get("id"), int) else str(raw["id"])
        )
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
        return Problem(line, "; ".join(errors), values.get("id"))
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
