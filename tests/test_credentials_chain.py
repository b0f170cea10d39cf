"""The SDK's credential chain, its precedence, and one specific sentence per missing piece."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from runner.credentials import CredentialsError, load_credentials
from runner.fake import FakeCredentials, serve_fake
from tests.run_support import jobs_by_state, submit, write_manifest

SECRET = "Sk-very-secret-9f8e7d6c"
ENV_ONLY = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "envkey"}


def _files(tmp_path: Path, user: str | None, system: str | None) -> list[Path]:
    paths = [tmp_path / "home-credentials", tmp_path / "etc-credentials"]
    for path, text in zip(paths, (user, system), strict=True):
        if text is not None:
            path.write_text(text)
    return paths


def _error(**kwargs: object) -> str:
    with pytest.raises(CredentialsError) as info:
        load_credentials(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_system_file_is_read_when_home_has_none(tmp_path: Path) -> None:
    paths = _files(tmp_path, None, "[default]\nsecret_id = AKIDetc\nsecret_key = etckey\n")
    creds = load_credentials(env={}, profile_paths=paths)
    assert (creds.secret_id, creds.secret_key) == ("AKIDetc", "etckey")
    assert str(paths[1]) in creds.source


def test_home_file_comes_before_system_file(tmp_path: Path) -> None:
    paths = _files(
        tmp_path,
        "[default]\nsecret_id = AKIDhome\nsecret_key = homekey\n",
        "[default]\nsecret_id = AKIDetc\nsecret_key = etckey\n",
    )
    assert load_credentials(env={}, profile_paths=paths).secret_id == "AKIDhome"


def test_explicit_profile_wins_over_environment(tmp_path: Path) -> None:
    paths = _files(tmp_path, "[prod]\nsecret_id = AKIDprod\nsecret_key = prodkey\n", None)
    assert load_credentials("prod", env=ENV_ONLY, profile_paths=paths).secret_id == "AKIDprod"
    # Not naming a profile keeps the SDK's order: the environment first.
    assert load_credentials(env=ENV_ONLY, profile_paths=paths).secret_id == "AKIDenv"


@pytest.mark.parametrize("name", ["TENCENTCLOUD_SESSION_TOKEN", "TENCENTCLOUD_SECURITY_TOKEN"])
def test_token_from_either_variable(name: str) -> None:
    creds = load_credentials(env={**ENV_ONLY, name: "tok-1"}, profile_paths=[Path("/none")])
    assert creds.token == "tok-1"


def test_only_secret_id_set_says_so(tmp_path: Path) -> None:
    text = _error(
        env={"TENCENTCLOUD_SECRET_ID": "AKID"}, profile_paths=_files(tmp_path, None, None)
    )
    assert "TENCENTCLOUD_SECRET_ID is set but TENCENTCLOUD_SECRET_KEY is not" in text


def test_missing_section_names_it_and_the_sections_there(tmp_path: Path) -> None:
    paths = _files(tmp_path, "[default]\nsecret_id = AKID\nsecret_key = k\n", None)
    text = _error(profile="staging", env={}, profile_paths=paths)
    assert f"{paths[0]} has no [staging] section" in text and "[default]" in text


def test_section_without_secret_key_names_file_and_line(tmp_path: Path) -> None:
    paths = _files(
        tmp_path, "[default]\nsecret_id = A\nsecret_key = k\n\n[staging]\nsecret_id = B\n", None
    )
    text = _error(profile="staging", env={}, profile_paths=paths)
    assert text == f"The [staging] section of {paths[0]} (line 5) has no secret_key."


def test_no_file_and_explicit_profile(tmp_path: Path) -> None:
    text = _error(profile="prod", env=ENV_ONLY, profile_paths=_files(tmp_path, None, None))
    assert "--profile prod" in text and "home-credentials" in text and "etc-credentials" in text


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (f"secret_key = {SECRET}\n[default]\n", 1),
        (f"[default]\nsecret_id = A\n{SECRET}\n", 3),
        (f"[default]\nsecret_key = {SECRET}\nsecret_key = {SECRET}\n", 3),
        (f"[default]\nsecret_key = {SECRET}\n[default]\n", 3),
    ],
)
def test_malformed_file_names_file_and_line_never_content(
    tmp_path: Path, content: str, line: int
) -> None:
    paths = _files(tmp_path, content, None)
    text = _error(env={}, profile_paths=paths)
    assert text.startswith(f"{paths[0]} line {line} is malformed")
    assert SECRET not in text


def test_percent_in_secret_is_not_an_interpolation_error(tmp_path: Path) -> None:
    paths = _files(tmp_path, "[default]\nsecret_id = A\nsecret_key = ab%cd\n", None)
    assert load_credentials(env={}, profile_paths=paths).secret_key == "ab%cd"


def _cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(home), **(env or {})},
        cwd=home,
        timeout=120,
    )


def test_malformed_home_file_at_debug_leaks_nothing(tmp_path: Path) -> None:
    (tmp_path / ".tencentcloud").mkdir()
    (tmp_path / ".tencentcloud" / "credentials").write_text(f"secret_key = {SECRET}\n")
    db = str(tmp_path / "q.db")  # a queue, so that `run` gets as far as the credentials
    anyio.run(submit, db, write_manifest(tmp_path / "m.csv", 1), "http://127.0.0.1/")
    proc = _cli(tmp_path, "-vv", "run", "--db", db)
    assert proc.returncode == 2
    assert "credentials line 1 is malformed" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.anyio
async def test_run_with_profile_ignores_environment_and_calls_with_the_profile(
    tmp_path: Path,
) -> None:
    (tmp_path / ".tencentcloud").mkdir()
    (tmp_path / ".tencentcloud" / "credentials").write_text(
        "[prod]\nsecret_id = AKIDprod0001\nsecret_key = prodkey\n"
    )
    db = str(tmp_path / "q.db")
    prod = FakeCredentials("AKIDprod0001", "prodkey")
    async with serve_fake(seed=1, credentials=prod) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 2), server.url + "/")
        common = ["run", "--db", db, "--out", str(tmp_path / "out"), "--endpoint", server.url]
        # The environment's (wrong) account halts the run: it is what a bare `run` uses ...
        env_run = await anyio.to_thread.run_sync(lambda: _cli(tmp_path, *common, env=ENV_ONLY))
        assert env_run.returncode == 3, env_run.stderr
        # ... and --profile prod wins over it.
        prod_run = await anyio.to_thread.run_sync(
            lambda: _cli(tmp_path, *common, "--profile", "prod", env=ENV_ONLY)
        )
        assert prod_run.returncode == 0, prod_run.stderr
    assert (await jobs_by_state(db))["done"] == 2


def test_region_from_tencentcloud_region_and_unknown_region_warns(tmp_path: Path) -> None:
    # No credentials: the run stops at exit 2 after the options (and their warnings) are read.
    proc = _cli(tmp_path, "run", env={"TENCENTCLOUD_REGION": "ap-singpore"})
    assert "region 'ap-singpore' is not one Tencent Cloud lists" in proc.stderr
    assert "Did you mean ap-singapore?" in proc.stderr
    proc = _cli(tmp_path, "run", "--region", "ap-tokyo", env={"TENCENTCLOUD_REGION": "xx"})
    assert "Warning" not in proc.stderr, "the flag wins over TENCENTCLOUD_REGION"


def test_endpoint_without_scheme_is_a_usage_error(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "run", "--endpoint", "127.0.0.1:8765", env=ENV_ONLY)
    assert proc.returncode == 2
    assert "not an http:// or https:// URL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "changeclothes.db").exists()
