"""The request body of ChangeClothes, checked as the API page describes it.

First what the gateway checks against the API's schema (a JSON object, no unknown field,
every required field present, every field of its type), then the values the service
checks (`ClothesType`, URL shapes, `RspImgType`, `LogoParam`). What needs the images
themselves (download, decode, size, resolution, a `LogoRect` inside the picture) is
checked later, by the task.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runner.api.request import CLOTHES_TYPES, RSP_IMG_TYPES
from runner.fake.protocol import JSON_CONTENT_TYPE, Rejected

REQUIRED = ("ModelUrl", "ClothesUrl", "ClothesType")
OPTIONAL = ("LogoAdd", "LogoParam", "RspImgType")
LOGO_FIELDS = ("LogoUrl", "LogoImage", "LogoRect")
RECT_FIELDS = ("X", "Y", "Width", "Height")
MAX_URL_LENGTH = 2048
LOGO_PARAM_ERR = "InvalidParameterValue.LogoParamErr"


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Logo:
    """A custom logo: `url` to download, else the decoded `image` bytes."""

    url: str | None
    image: bytes | None
    rect: Rect | None


@dataclass(frozen=True)
class Params:
    model_url: str
    clothes_url: str
    clothes_type: str
    logo_add: bool
    logo: Logo | None
    rsp_img_type: str


def is_url(value: str) -> bool:
    """An absolute http(s) URL with a host, no whitespace, of sane length."""
    if not value or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _logo(value: Any) -> Logo:
    if not isinstance(value, dict) or set(value) - set(LOGO_FIELDS):
        raise Rejected(LOGO_PARAM_ERR)
    url, image, rect_value = (value.get(name) for name in LOGO_FIELDS)
    if url is None and image is None:
        raise Rejected(LOGO_PARAM_ERR)
    if url is not None and not (isinstance(url, str) and is_url(url)):
        raise Rejected(LOGO_PARAM_ERR)
    image_bytes: bytes | None = None
    if url is None:  # the SDK documents: when both are given, the URL wins
        if not isinstance(image, str) or not image:
            raise Rejected(LOGO_PARAM_ERR)
        try:
            image_bytes = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(LOGO_PARAM_ERR) from None
    rect: Rect | None = None
    if rect_value is not None:
        if not isinstance(rect_value, dict) or set(rect_value) != set(RECT_FIELDS):
            raise Rejected(LOGO_PARAM_ERR)
        numbers = [rect_value[name] for name in RECT_FIELDS]
        if not all(_is_int(n) for n in numbers):
            raise Rejected(LOGO_PARAM_ERR)
        rect = Rect(*numbers)
        if rect.x < 0 or rect.y < 0 or rect.width <= 0 or rect.height <= 0:
            raise Rejected(LOGO_PARAM_ERR)
    return Logo(url=url, image=image_bytes, rect=rect)


def parse_params(content_type: str, body: bytes) -> Params:
    """The task a valid body asks for; `Rejected` with the documented code otherwise."""
    if content_type.split(";", 1)[0].strip().lower() != JSON_CONTENT_TYPE:
        raise Rejected("InvalidParameter")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("InvalidParameter") from None
    if not isinstance(document, dict):
        raise Rejected("InvalidParameter")

    if set(document) - set(REQUIRED) - set(OPTIONAL):
        raise Rejected("UnknownParameter")
    if any(document.get(name) is None for name in REQUIRED):
        raise Rejected("MissingParameter")
    for name in (*REQUIRED, "RspImgType"):
        if name in document and not isinstance(document[name], str):
            raise Rejected("InvalidParameter")
    logo_add = document.get("LogoAdd")
    if logo_add is not None and not _is_int(logo_add):
        raise Rejected("InvalidParameter")

    model_url: str = document["ModelUrl"]
    clothes_url: str = document["ClothesUrl"]
    for url in (model_url, clothes_url):
        if not url.strip():
            raise Rejected("InvalidParameterValue.ImageEmpty")
        if not is_url(url):
            raise Rejected("InvalidParameterValue.UrlIllegal")
    clothes_type: str = document["ClothesType"]
    if clothes_type not in CLOTHES_TYPES:
        raise Rejected("InvalidParameterValue.ParameterValueError")
    rsp_img_type = document.get("RspImgType")
    if rsp_img_type is None:
        rsp_img_type = "base64"
    elif rsp_img_type not in RSP_IMG_TYPES:
        raise Rejected("InvalidParameterValue.ParameterValueError")
    logo_value = document.get("LogoParam")
    logo = _logo(logo_value) if logo_value is not None else None

    return Params(
        model_url=model_url,
        clothes_url=clothes_url,
        clothes_type=clothes_type,
        # "1: add logo, 0: do not add logo, other values: add logo"
        logo_add=logo_add != 0,
        logo=logo,
        rsp_img_type=rsp_img_type,
    )
