"""The ChangeClothes request and result, with the API's own field names on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CLOTHES_TYPES = ("Upper-body", "Lower-body", "Dress")
RSP_IMG_TYPES = ("base64", "url")
ACTION = "ChangeClothes"
VERSION = "2022-12-29"
SERVICE = "aiart"

# Caps on what the network may send (README, "What the runner guarantees").
MAX_RESULT_BYTES = 50 * 1024 * 1024  # default of --max-result-bytes: one result image
URL_REPLY_LIMIT = 4 * 1024 * 1024  # a whole API answer when RspImgType is url
REPLY_OVERHEAD = 64 * 1024  # the JSON around a Base64 ResultImage
MAX_REQUEST_ID_CHARS = 128  # a RequestId is a UUID (36 characters)
MAX_RESULT_URL_CHARS = 8 * 1024
MAX_ERROR_FIELD_CHARS = 1024  # error Code and Message as kept; longer ones are cut


def base64_length(size: int) -> int:
    """Characters of the Base64 text of `size` bytes."""
    return (size + 2) // 3 * 4


def reply_limit(rsp_img_type: str | None, max_result_bytes: int = MAX_RESULT_BYTES) -> int:
    """Bytes of an API answer read at most; the API's default RspImgType is base64."""
    if rsp_img_type == "url":
        return URL_REPLY_LIMIT
    return base64_length(max_result_bytes) + REPLY_OVERHEAD


@dataclass(frozen=True)
class LogoRect:
    x: int
    y: int
    width: int
    height: int

    def to_body(self) -> dict[str, int]:
        return {"X": self.x, "Y": self.y, "Width": self.width, "Height": self.height}


@dataclass(frozen=True)
class LogoParam:
    logo_url: str | None = None
    logo_image: str | None = None  # Base64 of the logo image
    logo_rect: LogoRect | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.logo_url is not None:
            body["LogoUrl"] = self.logo_url
        if self.logo_image is not None:
            body["LogoImage"] = self.logo_image
        if self.logo_rect is not None:
            body["LogoRect"] = self.logo_rect.to_body()
        return body


@dataclass(frozen=True)
class ChangeClothesRequest:
    model_url: str
    clothes_url: str
    clothes_type: str
    logo_add: int | None = None
    logo_param: LogoParam | None = None
    rsp_img_type: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON object the API expects; unset optional fields are left out, never null."""
        body: dict[str, Any] = {
            "ModelUrl": self.model_url,
            "ClothesUrl": self.clothes_url,
            "ClothesType": self.clothes_type,
        }
        if self.logo_add is not None:
            body["LogoAdd"] = self.logo_add
        if self.logo_param is not None:
            body["LogoParam"] = self.logo_param.to_body()
        if self.rsp_img_type is not None:
            body["RspImgType"] = self.rsp_img_type
        return body

    def to_bytes(self) -> bytes:
        # The same serialisation as the official SDK (json.dumps defaults), so that the same
        # request signs to the same bytes.
        return json.dumps(self.to_body()).encode("utf-8")


@dataclass(frozen=True)
class ChangeClothesResult:
    result_image: str  # a URL when RspImgType was url, else Base64 of the image
    request_id: str

    @property
    def is_url(self) -> bool:
        return self.result_image.startswith(("http://", "https://"))
