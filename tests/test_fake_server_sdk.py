"""The official SDK's `AiartClient` is served by the fake as by Tencent: same signing, same
answers, results it can read."""

from __future__ import annotations

import base64
import hashlib
import urllib.request
from collections.abc import AsyncIterator

import anyio
import pytest
from tencentcloud.aiart.v20221229 import aiart_client, models
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from runner.api.errors import rule_for
from runner.fake import (
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    FakeConfig,
    FakeCredentials,
    FakeServer,
    serve_fake,
)
from tests.fake_api import decode, host_of, image_url

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # requests must not send loopback to a proxy
    async with serve_fake(FakeConfig(credentials=FakeCredentials.demo())) as server:
        yield server


def _client(
    server: FakeServer,
    secret_key: str = DEMO_SECRET_KEY,
    region: str = "ap-singapore",
    language: str = "en-US",
) -> aiart_client.AiartClient:
    http = HttpProfile(endpoint=host_of(server), protocol="http", reqTimeout=30)
    profile = ClientProfile(httpProfile=http, language=language)
    return aiart_client.AiartClient(Credential(DEMO_SECRET_ID, secret_key), region, profile)


def _request(server: FakeServer, **fields: object) -> models.ChangeClothesRequest:
    request = models.ChangeClothesRequest()
    request.ModelUrl = image_url(server, "model-02.jpg")
    request.ClothesUrl = image_url(server, "clothes-10.jpg")
    request.ClothesType = "Dress"
    for name, value in fields.items():
        setattr(request, name, value)
    return request


async def test_sdk_gets_a_result_url_it_can_download(server: FakeServer) -> None:
    client = _client(server)
    request = _request(server, RspImgType="url")
    response = await anyio.to_thread.run_sync(client.ChangeClothes, request)
    assert response.ResultImage.startswith(server.url + "/results/")
    assert response.RequestId
    data = await anyio.to_thread.run_sync(
        lambda: urllib.request.urlopen(response.ResultImage, timeout=10).read()
    )
    assert decode(data).size == (768, 1024)
    [record] = server.stats()["results"]
    assert record["id"] == response.RequestId
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


async def test_sdk_gets_an_inline_result_with_a_logo(server: FakeServer) -> None:
    rect = models.LogoRect()
    rect.X, rect.Y, rect.Width, rect.Height = 20, 20, 120, 40
    logo = models.LogoParam()
    logo.LogoUrl = image_url(server, "logo.png")
    logo.LogoRect = rect
    client = _client(server, region="ap-guangzhou", language="zh-CN")
    response = await anyio.to_thread.run_sync(
        client.ChangeClothes, _request(server, LogoParam=logo, LogoAdd=1)
    )
    picture = decode(base64.b64decode(response.ResultImage))
    assert picture.size == (768, 1024)
    r, g, b = picture.getpixel((40, 30))  # type: ignore[misc]
    assert b > 200 and r < 60  # the blue logo plate


@pytest.mark.parametrize(
    ("secret_key", "fields", "code"),
    [
        ("wrong-key", {}, "AuthFailure.SignatureFailure"),
        (DEMO_SECRET_KEY, {"ClothesType": "Shoes"}, "InvalidParameterValue.ParameterValueError"),
        (DEMO_SECRET_KEY, {"ModelUrl": "ftp://x/y.jpg"}, "InvalidParameterValue.UrlIllegal"),
        (DEMO_SECRET_KEY, {"ModelUrl": None}, "MissingParameter"),
    ],
)
async def test_sdk_raises_the_error_code_with_its_message(
    server: FakeServer, secret_key: str, fields: dict[str, object], code: str
) -> None:
    client = _client(server, secret_key=secret_key)
    with pytest.raises(TencentCloudSDKException) as info:
        await anyio.to_thread.run_sync(client.ChangeClothes, _request(server, **fields))
    assert info.value.code == code
    assert info.value.message == rule_for(code).message
    assert info.value.requestId
