"""The request body uses exactly the API's field names and types, and leaves unset fields out."""

from __future__ import annotations

import json

from runner.api.request import ChangeClothesRequest, LogoParam, LogoRect


def test_minimal_request_has_only_required_fields() -> None:
    body = json.loads(
        ChangeClothesRequest("https://a/m.jpg", "https://a/c.jpg", "Dress").to_bytes()
    )
    assert body == {
        "ModelUrl": "https://a/m.jpg",
        "ClothesUrl": "https://a/c.jpg",
        "ClothesType": "Dress",
    }
    assert "null" not in ChangeClothesRequest("u", "v", "Dress").to_bytes().decode()


def test_full_request_uses_api_names_and_types() -> None:
    req = ChangeClothesRequest(
        "https://a/m.jpg",
        "https://a/c.jpg",
        "Lower-body",
        logo_add=0,
        logo_param=LogoParam(logo_image="aGVsbG8=", logo_rect=LogoRect(1, 2, 30, 40)),
        rsp_img_type="base64",
    )
    body = json.loads(req.to_bytes())
    assert body == {
        "ModelUrl": "https://a/m.jpg",
        "ClothesUrl": "https://a/c.jpg",
        "ClothesType": "Lower-body",
        "LogoAdd": 0,
        "LogoParam": {
            "LogoImage": "aGVsbG8=",
            "LogoRect": {"X": 1, "Y": 2, "Width": 30, "Height": 40},
        },
        "RspImgType": "base64",
    }
    assert isinstance(body["LogoAdd"], int)
