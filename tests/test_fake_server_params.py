"""Parameters and input images are refused with the codes the API page documents."""

from __future__ import annotations

import base64
import io
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from runner.fake import FakeConfig, FakeCredentials, FakeServer, serve_fake
from runner.fake.config import DEFAULT_IMAGES_DIR
from tests.fake_api import assert_error, assert_ok, call, host_of, image_url, sign, task

pytestmark = pytest.mark.anyio

LOGO_PNG = (DEFAULT_IMAGES_DIR / "logo.png").read_bytes()
LOGO_B64 = base64.b64encode(LOGO_PNG).decode()
RECT = {"X": 10, "Y": 10, "Width": 120, "Height": 40}


def _jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample images plus inputs that break each documented limit."""
    folder = tmp_path_factory.mktemp("images")
    for path in DEFAULT_IMAGES_DIR.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "side-512.jpg").write_bytes(_jpeg((512, 1024)))
    (folder / "side-3000.jpg").write_bytes(_jpeg((3000, 1024)))
    (folder / "sides-513-2999.jpg").write_bytes(_jpeg((513, 2999)))
    (folder / "not-an-image.jpg").write_bytes(b"<html>this is a web page</html>" * 20)
    # 6.3 MB is more than 8 MB once Base64 encoded
    (folder / "huge.jpg").write_bytes(b"\xff\xd8" + bytes(6_300_000))
    return folder


@pytest.fixture
async def server(images_dir: Path) -> AsyncIterator[FakeServer]:
    config = FakeConfig(credentials=FakeCredentials.demo(), images_dir=images_dir)
    async with serve_fake(config) as server:
        yield server


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


BODY_CASES: list[tuple[str, Any, str]] = [
    # (case, change to a valid body: {field: value} or a callable, expected code)
    ("no ModelUrl", "-ModelUrl", "MissingParameter"),
    ("no ClothesUrl", "-ClothesUrl", "MissingParameter"),
    ("no ClothesType", "-ClothesType", "MissingParameter"),
    ("null ModelUrl", {"ModelUrl": None}, "MissingParameter"),
    ("number as URL", {"ModelUrl": 42}, "InvalidParameter"),
    ("string LogoAdd", {"LogoAdd": "1"}, "InvalidParameter"),
    ("boolean LogoAdd", {"LogoAdd": True}, "InvalidParameter"),
    ("list RspImgType", {"RspImgType": ["url"]}, "InvalidParameter"),
    ("unknown field", {"Prompt": "a red shirt"}, "UnknownParameter"),
    ("empty ModelUrl", {"ModelUrl": ""}, "InvalidParameterValue.ImageEmpty"),
    ("blank ClothesUrl", {"ClothesUrl": "  "}, "InvalidParameterValue.ImageEmpty"),
    ("ftp URL", {"ModelUrl": "ftp://127.0.0.1/model.jpg"}, "InvalidParameterValue.UrlIllegal"),
    ("relative URL", {"ClothesUrl": "images/clothes-01.jpg"}, "InvalidParameterValue.UrlIllegal"),
    ("no host", {"ModelUrl": "http:///model.jpg"}, "InvalidParameterValue.UrlIllegal"),
    ("space in URL", {"ModelUrl": "http://127.0.0.1/a b.jpg"}, "InvalidParameterValue.UrlIllegal"),
    ("lower-case type", {"ClothesType": "upper-body"}, "InvalidParameterValue.ParameterValueError"),
    ("unknown type", {"ClothesType": "Shoes"}, "InvalidParameterValue.ParameterValueError"),
    ("RspImgType png", {"RspImgType": "png"}, "InvalidParameterValue.ParameterValueError"),
    ("RspImgType URL", {"RspImgType": "URL"}, "InvalidParameterValue.ParameterValueError"),
    ("LogoParam string", {"LogoParam": "logo.png"}, "InvalidParameterValue.LogoParamErr"),
    ("LogoParam empty", {"LogoParam": {}}, "InvalidParameterValue.LogoParamErr"),
    ("LogoUrl bad", {"LogoParam": {"LogoUrl": "logo.png"}}, "InvalidParameterValue.LogoParamErr"),
    (
        "LogoImage not Base64",
        {"LogoParam": {"LogoImage": "not base64!"}},
        "InvalidParameterValue.LogoParamErr",
    ),
    (
        "LogoParam unknown field",
        {"LogoParam": {"LogoImage": LOGO_B64, "Opacity": 50}},
        "InvalidParameterValue.LogoParamErr",
    ),
    (
        "LogoRect zero width",
        {"LogoParam": {"LogoImage": LOGO_B64, "LogoRect": {**RECT, "Width": 0}}},
        "InvalidParameterValue.LogoParamErr",
    ),
    (
        "LogoRect negative",
        {"LogoParam": {"LogoImage": LOGO_B64, "LogoRect": {**RECT, "X": -1}}},
        "InvalidParameterValue.LogoParamErr",
    ),
    (
        "LogoRect float",
        {"LogoParam": {"LogoImage": LOGO_B64, "LogoRect": {**RECT, "Y": 1.5}}},
        "InvalidParameterValue.LogoParamErr",
    ),
    (
        "LogoRect missing field",
        {"LogoParam": {"LogoImage": LOGO_B64, "LogoRect": {"X": 1, "Y": 1, "Width": 9}}},
        "InvalidParameterValue.LogoParamErr",
    ),
]


@pytest.mark.parametrize(("case", "change", "code"), BODY_CASES, ids=[c[0] for c in BODY_CASES])
async def test_invalid_body_gets_documented_code(
    server: FakeServer, session: aiohttp.ClientSession, case: str, change: Any, code: str
) -> None:
    body = task(server)
    if isinstance(change, str):
        body = _without(body, change.removeprefix("-"))
    else:
        body.update(change)
    reply = await call(session, server, body)
    assert_error(reply, code)
    assert server.stats()["calls"] == {code: 1}
    assert server.stats()["max_in_flight"] == 0  # refused before any task started


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"ModelUrl=x", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b'{"ModelUrl": "x"}', "text/plain"),
    ],
)
async def test_body_that_is_not_a_json_object_is_invalid_parameter(
    server: FakeServer, session: aiohttp.ClientSession, raw: bytes, content_type: str
) -> None:
    headers = sign(host_of(server), raw, content_type=content_type)
    reply = await call(session, server, raw, headers=headers)
    assert_error(reply, "InvalidParameter")


async def test_request_body_over_ten_megabytes(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    body = task(server, LogoParam={"LogoImage": "A" * (10 * 1024 * 1024)})
    reply = await call(session, server, body)
    assert_error(reply, "FailedOperation.RequestEntityTooLarge")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("missing.jpg", "FailedOperation.ImageDownloadError"),
        ("https://example.com/model.jpg", "FailedOperation.ImageDownloadError"),
        ("CLOSED_PORT", "FailedOperation.ImageDownloadError"),
        ("not-an-image.jpg", "FailedOperation.ImageDecodeFailed"),
        ("broken-01.jpg", "FailedOperation.ImageDecodeFailed"),
        ("huge.jpg", "FailedOperation.ImageSizeExceed"),
        ("tiny-01.jpg", "FailedOperation.ImageResolutionExceed"),
        ("side-512.jpg", "FailedOperation.ImageResolutionExceed"),
        ("side-3000.jpg", "FailedOperation.ImageResolutionExceed"),
        ("sides-513-2999.jpg", "OK"),
    ],
)
async def test_model_image_limits(
    server: FakeServer, session: aiohttp.ClientSession, model: str, code: str
) -> None:
    if model == "CLOSED_PORT":
        url = f"http://127.0.0.1:{_closed_port()}/model.jpg"
    elif model.startswith("http"):
        url = model
    else:
        url = image_url(server, model)
    reply = await call(session, server, task(server, ModelUrl=url))
    if code == "OK":
        assert_ok(reply)
    else:
        assert_error(reply, code)
    assert server.stats()["in_flight"] == 0


async def test_clothes_image_is_checked_like_the_model(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, server, task(server, clothes="tiny-01.jpg"))
    assert_error(reply, "FailedOperation.ImageResolutionExceed")


async def test_other_integer_logo_add_values_mean_add_the_mark(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, server, task(server, LogoAdd=7))
    assert_ok(reply)
    assert server.stats()["results"][0]["logo_add"] is True


async def test_logo_rect_outside_the_picture_is_logo_param_error(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    rect = {"X": 700, "Y": 10, "Width": 120, "Height": 40}  # model pictures are 768 wide
    body = task(server, LogoParam={"LogoImage": LOGO_B64, "LogoRect": rect})
    assert_error(await call(session, server, body), "InvalidParameterValue.LogoParamErr")


async def test_logo_that_is_not_an_image_is_logo_param_error(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    text = base64.b64encode(b"just some text").decode()
    body = task(server, LogoParam={"LogoImage": text, "LogoRect": RECT})
    assert_error(await call(session, server, body), "InvalidParameterValue.LogoParamErr")


async def test_logo_url_that_cannot_be_downloaded(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    body = task(server, LogoParam={"LogoUrl": image_url(server, "no-logo.png")})
    assert_error(await call(session, server, body), "FailedOperation.ImageDownloadError")


async def test_valid_logo_param_variants_are_accepted(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    variants: list[dict[str, Any]] = [
        {"LogoUrl": image_url(server, "logo.png"), "LogoRect": RECT},
        {"LogoImage": LOGO_B64, "LogoRect": RECT},
        {"LogoImage": LOGO_B64},  # no rect: bottom right
        {"LogoUrl": image_url(server, "logo.png"), "LogoImage": LOGO_B64},  # the URL wins
    ]
    for logo in variants:
        reply = await call(session, server, task(server, LogoParam=logo))
        assert_ok(reply)
    # LogoAdd 0 turns the logo off, but the parameter is still checked
    assert_ok(await call(session, server, task(server, LogoAdd=0, LogoParam=variants[0])))
    bad = task(server, LogoAdd=0, LogoParam={"LogoUrl": "x"})
    assert_error(await call(session, server, bad), "InvalidParameterValue.LogoParamErr")
