"""Credentials are found as the official SDK finds them, and the secret key never leaks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runner.api import errors
from runner.api.client import ChangeClothesClient, http_session
from runner.api.request import ChangeClothesRequest
from runner.credentials import Credentials, CredentialsError, load_credentials
from tests.scripted_server import Answer, error_body, ok_body, scripted_server

SECRET = "very-secret-key-9f8e7d"


def test_environment_wins(tmp_path: Path) -> None:
    profile = tmp_path / "credentials"
    profile.write_text("[default]\nsecret_id = FROMFILE\nsecret_key = filekey\n")
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": SECRET}
    creds = load_credentials(env=env, profile_paths=[profile])
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDenv", SECRET, None)


def test_session_token_variable_is_read() -> None:
    env = {
        "TENCENTCLOUD_SECRET_ID": "AKID",
        "TENCENTCLOUD_SECRET_KEY": SECRET,
        "TENCENTCLOUD_SESSION_TOKEN": "tok",
    }
    assert load_credentials(env=env, profile_paths=[Path("/nonexistent")]).token == "tok"


def test_profile_file_default_and_named_section(tmp_path: Path) -> None:
    profile = tmp_path / "credentials"
    profile.write_text(
        "[default]\nsecret_id = AKIDdef\nsecret_key = defkey\n\n"
        "[catalog]\nsecret_id = AKIDcat\nsecret_key = catkey\n"
    )
    assert load_credentials(env={}, profile_paths=[profile]).secret_id == "AKIDdef"
    named = load_credentials("catalog", env={}, profile_paths=[profile])
    assert (named.secret_id, named.secret_key) == ("AKIDcat", "catkey")
    assert "catalog" in named.source


def test_missing_credentials_name_both_ways(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        load_credentials(env={}, profile_paths=[tmp_path / "credentials"])
    text = str(info.value)
    assert "TENCENTCLOUD_SECRET_ID" in text and "TENCENTCLOUD_SECRET_KEY" in text
    assert "credentials" in text and "[default]" in text


def test_half_set_environment_falls_back_to_file(tmp_path: Path) -> None:
    profile = tmp_path / "credentials"
    profile.write_text("[default]\nsecret_id = AKIDfile\nsecret_key = filekey\n")
    creds = load_credentials(env={"TENCENTCLOUD_SECRET_ID": "only-id"}, profile_paths=[profile])
    assert creds.secret_id == "AKIDfile"


def test_secret_not_in_repr_or_str() -> None:
    creds = Credentials("AKID", SECRET, token="tok-secret")
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert "tok-secret" not in repr(creds)


@pytest.mark.anyio
async def test_secret_never_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    creds = Credentials("AKIDlog", SECRET)
    request = ChangeClothesRequest("http://127.0.0.1/m.jpg", "http://127.0.0.1/c.jpg", "Dress")
    async with (
        scripted_server(
            Answer(error_body("AuthFailure.SignatureFailure")), Answer(ok_body())
        ) as srv,
        http_session() as session,
    ):
        client = ChangeClothesClient(session, creds, srv.url, "ap-singapore")
        with pytest.raises(errors.HaltError) as info:
            await client.change_clothes(request)
        await client.change_clothes(request)
        texts = [caplog.text, repr(client), str(info.value), repr(info.value)]
    assert caplog.records, "debug logging produced nothing: the test would prove nothing"
    for text in texts:
        assert SECRET not in text
