"""The official SDK and our client, pointed at the same local server with a frozen clock,
send the same request."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from tencentcloud.aiart.v20221229 import aiart_client, models
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from runner.api.client import ChangeClothesClient, http_session
from runner.api.request import ChangeClothesRequest, LogoParam, LogoRect
from runner.credentials import Credentials
from tests.scripted_server import Answer, Seen, ok_body, scripted_server

pytestmark = pytest.mark.anyio

FROZEN = 1_764_000_000
SECRET_ID, SECRET_KEY = "AKIDsdkcompare", "sdk-compare-key-Ω"


class _FrozenTime:
    """Stands in for the `time` module inside the SDK: `time()` is frozen, the rest is real."""

    def time(self) -> float:
        return float(FROZEN)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def reference_verify(seen: Seen, secret_key: str) -> bool:
    """TC3-HMAC-SHA256 as Tencent's documentation spells it, from what arrived on the wire."""
    h = {k.lower(): v for k, v in seen.headers.items()}
    ts = int(h["x-tc-timestamp"])
    date = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    canonical = (
        f"POST\n/\n\ncontent-type:{h['content-type']}\nhost:{h['host']}\n\n"
        f"content-type;host\n{hashlib.sha256(seen.body).hexdigest()}"
    )
    to_sign = (
        f"TC3-HMAC-SHA256\n{ts}\n{date}/aiart/tc3_request\n"
        f"{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = ("TC3" + secret_key).encode()
    for part in (date, "aiart", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return h["authorization"].endswith(f"Signature={expected}")


def sdk_call(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import tencentcloud.common.abstract_client as abstract_client

    monkeypatch.setattr(abstract_client, "time", _FrozenTime())
    http = HttpProfile(protocol="http", endpoint=url.removeprefix("http://"))
    client = aiart_client.AiartClient(
        Credential(SECRET_ID, SECRET_KEY), "ap-singapore", ClientProfile(httpProfile=http)
    )
    req = models.ChangeClothesRequest()
    req.ModelUrl = "https://cdn.example/模特-01.jpg"
    req.ClothesUrl = "https://cdn.example/clothes-01.jpg"
    req.ClothesType = "Upper-body"
    req.LogoAdd = 1
    logo = models.LogoParam()
    logo.LogoUrl = "https://cdn.example/logo.png"
    rect = models.LogoRect()
    rect.X, rect.Y, rect.Width, rect.Height = 10, 20, 100, 40
    logo.LogoRect = rect
    req.LogoParam = logo
    req.RspImgType = "url"
    return str(client.ChangeClothes(req).ResultImage)


OUR_REQUEST = ChangeClothesRequest(
    model_url="https://cdn.example/模特-01.jpg",
    clothes_url="https://cdn.example/clothes-01.jpg",
    clothes_type="Upper-body",
    logo_add=1,
    logo_param=LogoParam(
        logo_url="https://cdn.example/logo.png", logo_rect=LogoRect(10, 20, 100, 40)
    ),
    rsp_img_type="url",
)


async def test_sdk_and_client_send_the_same_signed_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with scripted_server(Answer(ok_body("http://127.0.0.1/a.jpg")), Answer(ok_body())) as srv:
        sdk_result = await anyio.to_thread.run_sync(sdk_call, srv.url, monkeypatch)
        async with http_session() as session:
            ours = ChangeClothesClient(
                session,
                Credentials(SECRET_ID, SECRET_KEY),
                srv.url,
                "ap-singapore",
                clock=lambda: float(FROZEN),
            )
            await ours.change_clothes(OUR_REQUEST)
    assert sdk_result == "http://127.0.0.1/a.jpg"
    sdk_seen, our_seen = srv.seen
    assert json.loads(sdk_seen.body) == json.loads(our_seen.body)
    assert reference_verify(sdk_seen, SECRET_KEY)
    assert reference_verify(our_seen, SECRET_KEY)
    assert sdk_seen.body == our_seen.body, "same serialisation as the SDK"
    for name in ("Authorization", "X-TC-Timestamp", "X-TC-Action", "X-TC-Version", "Host"):
        assert sdk_seen.headers[name] == our_seen.headers[name], name
    assert sdk_seen.headers["X-TC-Region"] == our_seen.headers["X-TC-Region"] == "ap-singapore"
    assert our_seen.headers["X-TC-Language"] == "en-US"
    assert (
        sdk_seen.headers["Content-Type"] == our_seen.headers["Content-Type"] == "application/json"
    )


async def test_session_token_is_sent_as_x_tc_token() -> None:
    async with scripted_server() as srv, http_session() as session:
        creds = Credentials(SECRET_ID, SECRET_KEY, token="tmp-token-1")
        await ChangeClothesClient(session, creds, srv.url, "ap-guangzhou").change_clothes(
            OUR_REQUEST
        )
    assert srv.seen[0].headers["X-TC-Token"] == "tmp-token-1"
    assert srv.seen[0].headers["X-TC-Region"] == "ap-guangzhou"


async def test_one_session_reuses_its_connection() -> None:
    async with scripted_server() as srv, http_session() as session:
        client = ChangeClothesClient(session, Credentials(SECRET_ID, SECRET_KEY), srv.url, "r")
        for _ in range(3):
            await client.change_clothes(OUR_REQUEST)
        connector = session.connector
        assert connector is not None
        # All three calls went through one kept-alive connection.
        assert sum(len(v) for v in connector._conns.values()) == 1  # noqa: SLF001
