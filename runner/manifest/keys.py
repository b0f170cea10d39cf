"""What names a row: the picture it would produce, and its id when the manifest gives none."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


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
