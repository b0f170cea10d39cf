"""Calling the fake server over real HTTP with hand-signed requests, for its tests.

Signing goes through `runner.api.signing` (checked against the SDK elsewhere); every header
can be dropped or overridden to build the broken requests the gateway must refuse.
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from PIL import Image

from runner.api import signing
from runner.api.errors import rule_for
from runner.api.request import ACTION, SERVICE, VERSION
from runner.fake import DEMO_SECRET_ID, DEMO_SECRET_KEY, FakeServer


@dataclass
class Reply:
    status: int
    content_type: str | None  # the raw header
    headers: dict[str, str]
    document: dict[str, Any]

    @property
    def response(self) -> dict[str, Any]:
        result: dict[str, Any] = self.document["Response"]
        return result

    @property
    def code(self) -> str:
        """The error code, or "OK" for a ResultImage."""
        error = self.response.get("Error")
        return "OK" if error is None else str(error["Code"])

    @property
    def result_image(self) -> str:
        return str(self.response["ResultImage"])


def host_of(server: FakeServer) -> str:
    return server.url.removeprefix("http://")


def image_url(server: FakeServer, name: str) -> str:
    return f"{server.url}/images/{name}"


def task(
    server: FakeServer,
    model: str = "model-01.jpg",
    clothes: str = "clothes-01.jpg",
    clothes_type: str = "Upper-body",
    **extra: Any,
) -> dict[str, Any]:
    """A valid request body over the sample images, plus any extra fields."""
    return {
        "ModelUrl": image_url(server, model),
        "ClothesUrl": image_url(server, clothes),
        "ClothesType": clothes_type,
        **extra,
    }


def sign(
    host: str,
    body: bytes,
    *,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    timestamp: int | None = None,
    sign_host: str | None = None,
    content_type: str = signing.JSON_CONTENT_TYPE,
    drop: tuple[str, ...] = (),
    set_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of one properly signed call; `drop` and `set_headers` (applied after
    signing) break it on purpose."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": ACTION,
        "X-TC-Version": VERSION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": "ap-singapore",
        "Authorization": signing.authorization(
            secret_id, secret_key, sign_host or host, body, timestamp, SERVICE, content_type
        ),
    }
    headers.update(set_headers or {})
    for name in drop:
        headers.pop(name, None)
    return headers


async def call(
    session: aiohttp.ClientSession,
    server: FakeServer,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    **sign_options: Any,
) -> Reply:
    """POST one API call and return its parsed answer."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if headers is None:
        headers = sign(host_of(server), raw, **sign_options)
    async with session.post(server.url + "/", data=raw, headers=headers) as resp:
        document = json.loads(await resp.read())
        return Reply(
            status=resp.status,
            content_type=resp.headers.get("Content-Type"),
            headers=dict(resp.headers),
            document=document,
        )


def assert_error(reply: Reply, code: str) -> None:
    """The answer is exactly the documented error shape, with this code and its message."""
    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert reply.document == {
        "Response": {
            "Error": {"Code": code, "Message": rule_for(code).message},
            "RequestId": reply.response["RequestId"],
        }
    }
    uuid.UUID(reply.response["RequestId"])


def assert_ok(reply: Reply) -> None:
    assert reply.status == 200, reply.document
    assert reply.content_type == "application/json"
    assert set(reply.response) == {"ResultImage", "RequestId"}, reply.document
    uuid.UUID(reply.response["RequestId"])


async def fetch_result(session: aiohttp.ClientSession, reply: Reply) -> bytes:
    """The result image's bytes, inline or downloaded."""
    image = reply.result_image
    if image.startswith("http"):
        async with session.get(image) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "image/jpeg"
            data = await resp.read()
            assert int(resp.headers["Content-Length"]) == len(data)
            return data
    return base64.b64decode(image, validate=True)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")
