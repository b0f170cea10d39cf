"""Export rows made safe to open: spreadsheet formulas neutralised, and the error file that
goes straight back into `submit --replace`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from runner.manifest.rows import FIELDS as MANIFEST_FIELDS

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

MANIFEST_COLUMNS = tuple(f for f in MANIFEST_FIELDS if f != "logo_param")
"""`export --as-manifest`: the input columns under the names `submit` reads (the logo as its
own columns, not the API's nested `logo_param`), then why the job stands where it does
(columns `submit` reads and ignores)."""


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a value starting with =, +, -, @, tab or CR that
    is not a number gets a leading apostrophe (OWASP's advice for CSV injection)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def manifest_row(row: dict[str, Any]) -> dict[str, Any]:
    """An export row (with its `options`) as a manifest row `submit` accepts."""
    options = row.get("options") or {}
    rect = options.get("logo_rect")
    return {
        "id": row["id"],
        "model_url": row["model_url"],
        "clothes_url": row["clothes_url"],
        "clothes_type": row["clothes_type"],
        "logo_add": options.get("logo_add"),
        "logo_url": options.get("logo_url"),
        "logo_image": options.get("logo_image"),
        "logo_rect": (
            None if not rect else f"{rect['x']},{rect['y']},{rect['width']},{rect['height']}"
        ),
        "rsp_img_type": options.get("rsp_img_type"),
        "error_code": row["last_error_code"],
        "error_message": row["last_error_message"],
    }
