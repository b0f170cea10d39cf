"""What names a row: the picture it would produce, and its id when the manifest gives none."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _plain_canonical(model_url: str, clothes_url: str, clothes_type: str, tail: str) -> bytes:
    """`_canonical([model_url, clothes_url, clothes_type, <tail>])` byte for byte, built
    without json.dumps' per-call set-up: the same string escaper, strings joined by hand."""
    return (
        f"[{encode_basestring(model_url)},{encode_basestring(clothes_url)},"
        f"{encode_basestring(clothes_type)},{tail}]"
    ).encode()


def dedupe_key(
    model_url: str, clothes_url: str, clothes_type: str, options: Mapping[str, Any]
) -> str:
    """sha256 hex naming the picture a request produces: equal keys give the same image.

    `rsp_img_type` only changes how the image is delivered, so it is left out, and an unset
    `logo_add` counts as the API's default of 1.
    """
    if not options:
        return plain_dedupe_key(model_url, clothes_url, clothes_type)
    picture = {k: v for k, v in options.items() if k != "rsp_img_type"}
    picture.setdefault("logo_add", 1)
    return hashlib.sha256(_canonical([model_url, clothes_url, clothes_type, picture])).hexdigest()


def plain_dedupe_key(model_url: str, clothes_url: str, clothes_type: str) -> str:
    """`dedupe_key` of a row without options: the same value (keys already stored in a
    queue keep matching), a third of the cost."""
    canonical = _plain_canonical(model_url, clothes_url, clothes_type, '{"logo_add":1}')
    return hashlib.sha256(canonical).hexdigest()


def derived_id(
    model_url: str, clothes_url: str, clothes_type: str, options: Mapping[str, Any]
) -> str:
    """The id of a row that has none: stable across resubmits, from the whole row's content."""
    if not options:
        digest = hashlib.sha256(_plain_canonical(model_url, clothes_url, clothes_type, "{}"))
    else:
        digest = hashlib.sha256(_canonical([model_url, clothes_url, clothes_type, dict(options)]))
    return "auto-" + digest.hexdigest()[:16]
