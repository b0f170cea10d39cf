"""The `run` command's face: credentials, settings layers, stopping rules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.cli.run import parse_until
from runner.fake import serve_fake
from tests.run_support import jobs_by_state, run, submit, write_manifest


def test_missing_credentials_exit_2_with_one_clear_sentence(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "run", "--db", str(tmp_path / "q.db")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert "TENCENTCLOUD_SECRET_ID" in message and ".tencentcloud/credentials" in message
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "q.db").exists(), "nothing touched before credentials are known"


def test_settings_flag_beats_env_beats_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "changeclothes.toml").write_text('db = "from-file.db"\n[status]\njson = true\n')
    runner = CliRunner()
    # `status` names the database it looked for when there is none: that shows the winner.
    result = runner.invoke(cli, ["status"], env={"CHANGECLOTHES_DB": None})
    assert "from-file.db" in result.output

    result = runner.invoke(cli, ["status"], env={"CHANGECLOTHES_DB": "from-env.db"})
    assert "from-env.db" in result.output

    result = runner.invoke(
        cli, ["status", "--db", "from-flag.db"], env={"CHANGECLOTHES_DB": "from-env.db"}
    )
    assert "from-flag.db" in result.output

    # A [command] table applies to that command: here it turns --json on.
    CliRunner().invoke(cli, ["db", "upgrade", "--db", "real.db"])
    result = runner.invoke(cli, ["status", "--db", "real.db"])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), dict | list)


def test_bad_settings_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("db = \n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "status"])
    assert result.exit_code == 2
    assert "not valid TOML" in result.output


def test_until_is_today_or_tomorrow() -> None:
    now = datetime(2026, 11, 25, 22, 0).astimezone()
    assert parse_until("23:30", now) == now.replace(hour=23, minute=30)
    tomorrow = parse_until("06:00", now)
    assert tomorrow is not None and tomorrow.day == 26 and tomorrow.hour == 6


@pytest.mark.anyio
async def test_max_jobs_stops_with_exit_4_and_a_rerun_continues(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 6), server.url + "/")
        first = await run(db, server, tmp_path / "out", max_jobs=2)
        assert first.exit_code == 4
        assert (await jobs_by_state(db))["done"] == 2
        second = await run(db, server, tmp_path / "out")
        assert second.exit_code == 0
        assert server.stats()["calls"] == {"OK": 6}
