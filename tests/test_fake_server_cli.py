"""`changeclothes fake-server` starts the same server, says where and with which
credentials, never prints a real secret key, and stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.fake import DEMO_SECRET_ID, DEMO_SECRET_KEY


@contextmanager
def _fake_server(
    *args: str, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Start the command on a free port; yield the process, its URL and its banner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "fake-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline() + process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert match, banner
        yield process, match.group(0), banner
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_command_serves_and_stops_on_signal(sig: signal.Signals) -> None:
    with _fake_server("--concurrency", "2", "--account-state", "arrears", env=_env()) as (
        process,
        url,
        banner,
    ):
        assert DEMO_SECRET_ID in banner and DEMO_SECRET_KEY in banner
        assert "demo credentials" in banner
        with urllib.request.urlopen(url + "/_admin/stats", timeout=10) as resp:
            stats = json.load(resp)
        assert stats["account_state"] == "arrears"
        with urllib.request.urlopen(url + "/images/model-01.jpg", timeout=10) as resp:
            assert resp.status == 200
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0


def test_command_never_prints_a_real_secret_key() -> None:
    env = _env(TENCENTCLOUD_SECRET_ID="AKIDrealaccount1234", TENCENTCLOUD_SECRET_KEY="s3cr3t-k3y")
    with _fake_server(env=env) as (process, _url, banner):
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=10)
    assert "s3cr3t-k3y" not in banner + rest
    assert "environment" in banner and DEMO_SECRET_KEY not in banner


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "Nope=0.1"], "not an error code"),
        (["--fault", "InternalError"], "CODE=RATE"),
        (["--account-state", "broke"], "broke"),
        (["--latency-dist", "pareto"], "pareto"),
    ],
)
def test_command_refuses_bad_flags(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["fake-server", *args])
    assert result.exit_code == 2
    assert message in result.output
