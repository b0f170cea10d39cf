"""Field checks on the API's answer and on result files, without a network: what passes the
client's checks is short, typed and bounded; what a result file may be is an image within the
pixel limit, whatever its header claims."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from runner.api import errors
from runner.api.client import parse_reply
from runner.api.request import MAX_RESULT_URL_CHARS, base64_length
from runner.scheduler import files
from runner.scheduler.downloads import url_expiry
from tests.hostile_server import png_of_zeros, small_image

pytestmark = pytest.mark.anyio


def reply(**response: object) -> bytes:
    return json.dumps({"Response": response}).encode()


@pytest.mark.parametrize(
    "request_id", [12345, "x" * 129, "line\nforged log line", None, ["a"]], ids=repr
)
def test_request_id_must_be_short_printable_text(request_id: object) -> None:
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, reply(RequestId=request_id, ResultImage="http://127.0.0.1/r.jpg"))
    assert info.value.code == errors.BAD_REQUEST_ID


def test_a_missing_request_id_is_allowed() -> None:
    result = parse_reply(200, reply(ResultImage="http://127.0.0.1/r.jpg"))
    assert result.request_id == ""


def test_result_url_length_is_bounded() -> None:
    base = "https://127.0.0.1/r.jpg?sig="
    fits = base + "a" * (MAX_RESULT_URL_CHARS - len(base))
    assert parse_reply(200, reply(RequestId="r", ResultImage=fits)).result_image == fits
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, reply(RequestId="r", ResultImage=fits + "a"), rsp_img_type="url")
    assert info.value.code == errors.BAD_RESULT_IMAGE


@pytest.mark.parametrize("image", ["ftp://host/r.jpg", "http://", "http://h/a b", 42, ["x"]])
def test_url_result_must_be_an_http_url(image: object) -> None:
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, reply(RequestId="r", ResultImage=image), rsp_img_type="url")
    assert info.value.code in {errors.BAD_RESULT_IMAGE, errors.BAD_RESPONSE}


def test_base64_result_is_capped() -> None:
    cap = 1000
    fits = "A" * base64_length(cap)
    parse_reply(200, reply(RequestId="r", ResultImage=fits), max_result_bytes=cap)
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, reply(RequestId="r", ResultImage=fits + "AAAA"), max_result_bytes=cap)
    assert info.value.code == errors.RESULT_TOO_LARGE


def test_error_fields_are_bounded() -> None:
    body = reply(RequestId="r", Error={"Code": "InternalError", "Message": "m" * 100_000})
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, body)
    assert len(info.value.message) <= 1024
    with pytest.raises(errors.TransientError) as info:
        parse_reply(200, reply(RequestId="r", Error={"Code": "C" * 5000, "Message": "m"}))
    assert info.value.code == errors.BAD_RESPONSE


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (200, b"<!doctype html><title>Login</title>", None, errors.NOT_THE_API),  # portal
        (302, b"", "text/plain", errors.NOT_THE_API),
        (503, b"upstream connect error", "text/plain", errors.NOT_THE_API),
        (404, b"<html>Not Found</html>", "text/html", errors.NOT_THE_API),
        (404, b"no such route", "text/plain", errors.HTTP_STATUS),
        (200, b'{"Response": {"ResultImage": "http://h/r', "application/json", "BAD"),
    ],
)
def test_answers_from_something_else_are_outages(
    status: int, body: bytes, content_type: str | None, expected: str
) -> None:
    with pytest.raises(errors.ApiError) as info:
        parse_reply(status, body, content_type=content_type)
    if expected == "BAD":  # a truncated API answer is the job's transient trouble
        assert info.value.code == errors.BAD_RESPONSE
        assert info.value.error_class is errors.ErrorClass.TRANSIENT
    else:
        assert info.value.code == expected
        is_outage = expected == errors.NOT_THE_API
        assert isinstance(info.value, errors.OutageError) is is_outage


def test_new_codes_are_in_the_table() -> None:
    assert errors.classify(errors.UNREACHABLE) is errors.ErrorClass.OUTAGE
    assert errors.classify(errors.NOT_THE_API) is errors.ErrorClass.OUTAGE
    assert errors.rule_for(errors.UNREACHABLE).advice
    for code in (errors.RESPONSE_TOO_LARGE, errors.BAD_REQUEST_ID, errors.RESULT_TOO_LARGE):
        assert errors.classify(code) is errors.ErrorClass.TRANSIENT
        assert errors.rule_for(code).code == code


def test_signed_urls_state_their_expiry() -> None:
    cos = "https://b.cos.ap-singapore.myqcloud.com/r.jpg?q-sign-algorithm=sha1&q-sign-time=1700000000;1700003600"
    assert url_expiry(cos) == datetime.fromtimestamp(1700003600, UTC)
    s3 = "https://s3/r.jpg?X-Amz-Date=20240102T030405Z&X-Amz-Expires=60"
    assert url_expiry(s3) == datetime(2024, 1, 2, 3, 5, 5, tzinfo=UTC)
    assert url_expiry("https://cdn/r.jpg?Expires=1700000000") == datetime.fromtimestamp(
        1700000000, UTC
    )
    assert url_expiry("https://cdn/r.jpg?q-sign-time=garbage") is None
    assert url_expiry("https://cdn/r.jpg") is None


@pytest.mark.parametrize(
    ("width", "height"),
    [(5000, 4000), (10000, 10000), (30000, 30000)],
    ids=["over-our-limit", "pillow-warns", "pillow-refuses"],
)
async def test_too_many_pixels_is_not_an_image(tmp_path: Path, width: int, height: int) -> None:
    assert width * height > files.MAX_RESULT_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape the check either
        with pytest.raises(files.NotAnImage):
            await files.write_bytes(tmp_path, "bomb", png_of_zeros(width, height))
    assert not list(tmp_path.iterdir()), "nothing is left on disk"


async def test_an_image_at_the_pixel_limit_passes(tmp_path: Path) -> None:
    side = int(files.MAX_RESULT_PIXELS**0.5)
    written = await files.write_bytes(tmp_path, "edge", png_of_zeros(side, side))
    with Image.open(written.path) as image:
        assert image.size == (side, side)


async def test_formats_we_do_not_keep_are_not_images(tmp_path: Path) -> None:
    with pytest.raises(files.NotAnImage):
        await files.write_bytes(tmp_path, "tiff", small_image("TIFF"))


def test_a_missing_file_is_a_local_error_not_a_bad_result(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        files._image_format(tmp_path / "gone.png")
