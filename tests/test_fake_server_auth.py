"""The fake's gateway refuses what Tencent's refuses: bad signatures, stale timestamps,
unknown keys, wrong action or version, missing headers; and accepts a proper TC3 call."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from runner.fake import DEMO_SECRET_ID, DEMO_SECRET_KEY, FakeConfig, FakeCredentials, serve_fake
from tests.fake_api import assert_error, assert_ok, call, host_of, sign, task

pytestmark = pytest.mark.anyio

DEMO = FakeCredentials.demo()


async def test_properly_signed_call_succeeds(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server))
    assert_ok(reply)


async def test_wrong_secret_key_is_signature_failure(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server), secret_key=DEMO_SECRET_KEY + "x")
    assert_error(reply, "AuthFailure.SignatureFailure")


async def test_body_changed_after_signing_is_signature_failure(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        signed = json.dumps(task(server)).encode()
        headers = sign(host_of(server), signed)
        tampered = json.dumps(task(server, clothes="clothes-02.jpg")).encode()
        reply = await call(session, server, tampered, headers=headers)
    assert_error(reply, "AuthFailure.SignatureFailure")


async def test_signature_covers_host_with_its_port(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        without_port = host_of(server).split(":")[0]
        reply = await call(session, server, task(server), sign_host=without_port)
    assert_error(reply, "AuthFailure.SignatureFailure")


async def test_signature_covers_content_type(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        raw = json.dumps(task(server)).encode()
        headers = sign(host_of(server), raw)
        headers["Content-Type"] = "application/json; charset=utf-8"
        reply = await call(session, server, raw, headers=headers)
    assert_error(reply, "AuthFailure.SignatureFailure")


@pytest.mark.parametrize("skew", [-301, 301, 3600])
async def test_timestamp_off_by_more_than_five_minutes_is_expired(
    session: aiohttp.ClientSession, skew: int
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server), timestamp=int(time.time()) + skew)
    assert_error(reply, "AuthFailure.SignatureExpire")


async def test_timestamp_within_five_minutes_is_accepted(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server), timestamp=int(time.time()) - 280)
    assert_ok(reply)


async def test_server_clock_is_in_date_header_and_correcting_to_it_works(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, clock_offset=1800)) as server:
        first = await call(session, server, task(server))
        assert_error(first, "AuthFailure.SignatureExpire")
        server_time = parsedate_to_datetime(first.headers["Date"]).timestamp()
        assert abs(server_time - (time.time() + 1800)) < 5
        second = await call(session, server, task(server), timestamp=int(server_time))
    assert_ok(second)


async def test_unknown_secret_id(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server), secret_id="AKIDnobody")
    assert_error(reply, "AuthFailure.SecretIdNotFound")


async def test_credentials_from_environment_replace_the_demo_pair(
    session: aiohttp.ClientSession,
) -> None:
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDfromenv", "TENCENTCLOUD_SECRET_KEY": "env-key"}
    creds = FakeCredentials.from_env(env)
    assert (creds.secret_id, creds.secret_key, creds.source) == (
        "AKIDfromenv",
        "env-key",
        "environment",
    )
    assert "env-key" not in creds.describe() and "env-key" not in repr(creds)
    assert FakeCredentials.from_env({}).is_demo
    async with serve_fake(FakeConfig(credentials=creds)) as server:
        demo = await call(session, server, task(server))
        env_signed = await call(
            session, server, task(server), secret_id="AKIDfromenv", secret_key="env-key"
        )
    assert_error(demo, "AuthFailure.SecretIdNotFound")
    assert_ok(env_signed)


async def test_serve_fake_reads_the_environment_when_no_credentials_are_given(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDviaenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "via-env-key")
    async with serve_fake() as server:
        assert server.credentials.secret_id == "AKIDviaenv"
        reply = await call(
            session, server, task(server), secret_id="AKIDviaenv", secret_key="via-env-key"
        )
    assert_ok(reply)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"X-TC-Action": "TextToImage"}, "InvalidAction"),
        ({"X-TC-Version": "2020-01-01"}, "NoSuchVersion"),
        ({"X-TC-Region": "mars-base"}, "UnsupportedRegion"),
        ({"X-TC-Timestamp": "soon"}, "InvalidParameter"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "AuthFailure.InvalidAuthorization"),
        (
            {
                "Authorization": f"TC3-HMAC-SHA256 Credential={DEMO_SECRET_ID}/2025-01-01/cvm/"
                "tc3_request, SignedHeaders=content-type;host, Signature=00"
            },
            "AuthFailure.InvalidAuthorization",
        ),
    ],
)
async def test_wrong_common_headers(
    session: aiohttp.ClientSession, overrides: dict[str, str], code: str
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        raw = json.dumps(task(server)).encode()
        reply = await call(
            session, server, raw, headers=sign(host_of(server), raw, set_headers=overrides)
        )
    assert_error(reply, code)


@pytest.mark.parametrize(
    "header", ["X-TC-Action", "X-TC-Version", "X-TC-Region", "X-TC-Timestamp", "Authorization"]
)
async def test_missing_common_header(session: aiohttp.ClientSession, header: str) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(session, server, task(server), drop=(header,))
    assert_error(reply, "MissingParameter")


async def test_action_is_checked_before_the_signature(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        reply = await call(
            session,
            server,
            task(server),
            secret_key="wrong",
            set_headers={"X-TC-Action": "ChangeHats"},
        )
    assert_error(reply, "InvalidAction")


async def test_session_token_is_checked_when_the_key_has_one(
    session: aiohttp.ClientSession,
) -> None:
    creds = FakeCredentials(DEMO_SECRET_ID, DEMO_SECRET_KEY, token="tok-123")
    async with serve_fake(FakeConfig(credentials=creds)) as server:
        without = await call(session, server, task(server))
        wrong = await call(session, server, task(server), set_headers={"X-TC-Token": "tok-999"})
        right = await call(session, server, task(server), set_headers={"X-TC-Token": "tok-123"})
    assert_error(without, "AuthFailure.TokenFailure")
    assert_error(wrong, "AuthFailure.TokenFailure")
    assert_ok(right)


async def test_unsigned_payload_option_of_the_sdk_is_accepted(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        raw = json.dumps(task(server)).encode()
        headers = sign(
            host_of(server),
            b"UNSIGNED-PAYLOAD",
            set_headers={"X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"},
        )
        reply = await call(session, server, raw, headers=headers)
    assert_ok(reply)
    # and the marker is what is signed: signing the real body with the marker set fails
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        raw = json.dumps(task(server)).encode()
        headers = sign(
            host_of(server), raw, set_headers={"X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"}
        )
        reply = await call(session, server, raw, headers=headers)
    assert_error(reply, "AuthFailure.SignatureFailure")
