"""Result images: real pictures with the garment and the mark where expected, inline or
behind an unguessable URL that answers 403 once its TTL has passed."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from PIL import Image, ImageChops, ImageStat
from yarl import URL

from runner.fake import FakeConfig, FakeCredentials, FakeServer, serve_fake
from runner.fake.config import DEFAULT_IMAGES_DIR
from runner.fake.render import mark_box
from runner.scheduler.downloads import url_expiry
from tests.fake_api import assert_ok, call, decode, fetch_result, task

pytestmark = pytest.mark.anyio

DEMO = FakeCredentials.demo()
MODEL = Image.open(DEFAULT_IMAGES_DIR / "model-01.jpg").convert("RGB")
WIDTH, HEIGHT = MODEL.size


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        yield server


def _band_difference(a: Image.Image, b: Image.Image, top: float, bottom: float) -> float:
    """Mean absolute pixel difference between two pictures in a horizontal band."""
    box = (0, round(top * HEIGHT), WIDTH, round(bottom * HEIGHT))
    diff = ImageChops.difference(a.crop(box), b.crop(box)).convert("L")
    return float(ImageStat.Stat(diff).mean[0])


async def test_base64_result_is_a_picture_of_the_model_size(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    reply = await call(session, server, task(server))  # RspImgType defaults to base64
    assert_ok(reply)
    data = base64.b64decode(reply.result_image, validate=True)
    picture = decode(data)
    assert picture.size == MODEL.size
    stats = server.stats()
    [record] = stats["results"]
    assert record["rsp_img_type"] == "base64"
    assert record["id"] == reply.response["RequestId"]
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert stats["bytes_served"] == len(data)


async def test_url_result_downloads_with_the_recorded_hash(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    first = await call(session, server, task(server, RspImgType="url"))
    second = await call(session, server, task(server, RspImgType="url"))
    assert_ok(first)
    url = first.result_image
    path = URL(url).path
    assert url.startswith(server.url + "/results/") and path.endswith(".jpg")
    assert url_expiry(url) is not None, "the URL states its lifetime, as a COS URL does"
    token = path.rsplit("/", 1)[1].removesuffix(".jpg")
    assert len(token) >= 32  # unguessable
    assert second.result_image != url
    data = await fetch_result(session, first)
    assert decode(data).size == MODEL.size
    stats = server.stats()
    assert [r["sha256"] for r in stats["results"]][0] == hashlib.sha256(data).hexdigest()
    assert stats["results"][0]["url"] == url
    assert stats["downloads"] == [
        {"token": token, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    ]
    assert stats["bytes_served"] == len(data)


async def test_url_result_is_gone_after_its_ttl(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, ttl=0.5)) as server:
        reply = await call(session, server, task(server, RspImgType="url"))
        await fetch_result(session, reply)  # fine while fresh
        await anyio.sleep(0.6)
        async with session.get(reply.result_image) as resp:
            status, body = resp.status, await resp.text()
        async with session.get(server.url + "/results/never-issued.jpg") as resp:
            unknown_status = resp.status
        stats = server.stats()
    assert status == 403
    assert "<Code>AccessDenied</Code>" in body and body.startswith("<?xml")
    assert unknown_status == 404
    assert stats["expired_downloads"] == 1
    assert stats["stored_results"] == 0


async def test_garment_lands_on_the_body_region_of_its_type(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    pictures = {}
    for clothes, clothes_type in [
        ("clothes-01.jpg", "Upper-body"),
        ("clothes-06.jpg", "Lower-body"),
        ("clothes-10.jpg", "Dress"),
    ]:
        reply = await call(
            session, server, task(server, clothes=clothes, clothes_type=clothes_type, LogoAdd=0)
        )
        assert_ok(reply)
        pictures[clothes_type] = decode(await fetch_result(session, reply))
    chest, legs = (0.25, 0.5), (0.62, 0.88)
    upper, lower, dress = pictures["Upper-body"], pictures["Lower-body"], pictures["Dress"]
    assert _band_difference(upper, MODEL, *chest) > 15
    assert _band_difference(upper, MODEL, *legs) < 3
    assert _band_difference(lower, MODEL, *legs) > 15
    assert _band_difference(lower, MODEL, *chest) < 3
    assert _band_difference(dress, MODEL, *chest) > 15
    assert _band_difference(dress, MODEL, *legs) > 15


async def test_mark_is_bottom_right_unless_logo_add_is_zero(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    marked = decode(await fetch_result(session, await call(session, server, task(server))))
    plain_reply = await call(session, server, task(server, LogoAdd=0))
    plain = decode(await fetch_result(session, plain_reply))
    left, top, right, bottom = mark_box(WIDTH, HEIGHT)
    assert right > WIDTH * 0.75 and bottom > HEIGHT * 0.9  # bottom right

    box = (left, top, right, bottom)
    inside = ImageStat.Stat(ImageChops.difference(marked.crop(box), plain.crop(box)).convert("L"))
    assert inside.mean[0] > 40
    # the mark is white text on a dark box, where the backdrop was light
    histogram = marked.crop(box).convert("L").histogram()
    area = (right - left) * (bottom - top)
    assert sum(histogram[:100]) > area * 0.5  # the box
    assert sum(histogram[200:]) > area * 0.03  # the letters
    assert sum(plain.crop(box).convert("L").histogram()[:100]) == 0

    # elsewhere the two pictures are the same (JPEG blocks touching the mark excepted)
    pad = 16
    rest = ImageChops.difference(
        marked.crop((0, 0, WIDTH, top - pad)), plain.crop((0, 0, WIDTH, top - pad))
    )
    assert rest.getbbox() is None


async def test_custom_logo_is_drawn_at_logo_rect_instead_of_the_mark(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    logo = base64.b64encode((DEFAULT_IMAGES_DIR / "logo.png").read_bytes()).decode()
    rect = {"X": 40, "Y": 40, "Width": 240, "Height": 80}
    reply = await call(
        session, server, task(server, LogoParam={"LogoImage": logo, "LogoRect": rect})
    )
    with_logo = decode(await fetch_result(session, reply))
    plain_reply = await call(session, server, task(server, LogoAdd=0))
    plain = decode(await fetch_result(session, plain_reply))

    inner = (60, 50, 100, 70)  # inside the logo's blue plate, away from its text
    r, g, b = ImageStat.Stat(with_logo.crop(inner)).mean
    assert b > 200 and r < 60 and 80 < g < 160
    # no "Generated by AI" box: the bottom right is as without any mark
    box = mark_box(WIDTH, HEIGHT)
    assert ImageChops.difference(with_logo.crop(box), plain.crop(box)).getbbox() is None


@pytest.mark.timing
async def test_download_delay_slows_result_downloads(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, download_delay=0.5)) as server:
        started = time.monotonic()
        reply = await call(session, server, task(server, RspImgType="url"))
        api_took = time.monotonic() - started
        started = time.monotonic()
        data = await fetch_result(session, reply)
        download_took = time.monotonic() - started
        assert server.stats()["downloads"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert api_took < 0.4
    assert download_took >= 0.45


async def test_sample_images_are_served_and_nothing_else(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url + "/images/model-01.jpg") as resp:
        assert resp.status == 200
        assert await resp.read() == (DEFAULT_IMAGES_DIR / "model-01.jpg").read_bytes()
    for path in ["/images/..%2Fcatalog.csv", "/images/.hidden", "/images/nope.jpg"]:
        async with session.get(server.url + path) as resp:
            assert resp.status == 404, path


async def test_admin_reset_forgets_the_counts(
    server: FakeServer, session: aiohttp.ClientSession
) -> None:
    await call(session, server, task(server))
    assert server.stats()["calls"] == {"OK": 1}
    async with session.post(server.url + "/_admin/reset") as resp:
        assert resp.status == 200
    async with session.get(server.url + "/_admin/stats") as resp:
        stats = await resp.json()
    assert stats["calls"] == {} and stats["results"] == [] and stats["max_in_flight"] == 0
