"""What `run` shows: one start line, a live line that fits 80 columns with logs above it,
a summary that keeps this run apart from the queue, and --max-jobs counting jobs."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import anyio
import pytest

from runner.fake import FakeServer, serve_fake
from tests.run_support import jobs_by_state, run, submit, write_manifest
from tests.subprocess_support import runner_env

pytestmark = pytest.mark.anyio

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_command(db: str, out: Path, server: FakeServer, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "runner", "run", "--db", db, "--out", str(out),
        "--endpoint", server.url, "--retry-delay", "0.05", "--backoff-base", "0.05",
        "--backoff-cap", "0.2", *extra,
    ]  # fmt: skip


def env_for(server: FakeServer) -> dict[str, str]:
    """The run's environment on a terminal whose size the terminal itself gives."""
    env = {k: v for k, v in runner_env(server).items() if k not in ("COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color"}


async def run_in_terminal(command: list[str], env: dict[str, str], columns: int) -> str:
    """Run `command` with stdout and stderr on a pseudo-terminal `columns` wide; its output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
        )
    )
    os.close(follower)
    chunks: list[bytes] = []

    def read_all() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process has ended
                return
            if not data:
                return
            chunks.append(data)

    with anyio.fail_after(120):
        await anyio.to_thread.run_sync(read_all)
        await anyio.to_thread.run_sync(process.wait)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


async def test_live_line_fits_80_columns_with_logs_above_it(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    faults = {"FailedOperation.InnerError": 0.3}  # retries give log lines (-v) mid-run
    async with serve_fake(latency=0.05, faults=faults, seed=5) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 24), server.url + "/")
        command = run_command(db, tmp_path / "out", server, "-v", "--max-attempts", "20")
        screen = await run_in_terminal(command, env_for(server), 80)
    lines = [ANSI.sub("", line).rstrip() for line in re.split(r"\r\n|\r|\n", screen)]
    lines = [line for line in lines if line.strip()]
    start = next(line for line in lines if line.startswith("Running every batch"))
    assert "24 jobs to do" in start and server.url in start and "environment" in start
    assert "up to 1 calls at once (no account limit recorded" in start
    frames = [line for line in lines if line.startswith("jobs ")]
    assert frames, screen
    assert all(len(line) <= 80 for line in frames), [f for f in frames if len(f) > 80]
    # The total and the time left are on every frame, labelled.
    assert all(
        re.search(r"^jobs \d+/24 ", f) and re.search(r"left (\?|\d+:\d\d:\d\d)", f) for f in frames
    )
    assert frames[-1].startswith("jobs 24/24 "), "the last frame matches the end"
    logs = [line for line in lines if "retrying at" in line]
    assert logs, "-v shows the retries"
    assert not [line for line in logs if "jobs " in line and "/24" in line], "a log inside a bar"
    summary = next(line for line in lines if line.startswith("This run:"))
    assert summary.startswith("This run: 24 done, 0 failed")
    assert any(line.startswith("The queue now: 24 done, 0 failed") for line in lines)


async def test_piped_output_is_one_event_a_line_and_never_wrapped(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(latency=0.01, seed=6) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        done = await anyio.run_process(
            run_command(db, tmp_path / "out" / ("deep-" * 20), server),
            env={**env_for(server), "COLUMNS": "40"},
            check=False,
        )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "\x1b[" not in out + err
    this_run = [line for line in out.splitlines() if line.startswith("This run:")]
    assert len(this_run) == 1 and "3 done" in this_run[0], out
    assert len(this_run[0]) > 40, "a long sentence stays on one line"


async def test_max_jobs_counts_jobs_not_calls(tmp_path: Path) -> None:
    """Three calls at once against a one-slot account: the throttled answers are not jobs."""
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=1, latency=0.05, seed=7) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 12), server.url + "/")
        result = await run(db, server, tmp_path / "out", max_jobs=5, concurrency=3)
        throttled = server.stats()["calls"].get("RequestLimitExceeded.JobNumExceed", 0)
    assert result.exit_code == 4
    assert (await jobs_by_state(db))["done"] == 5
    assert len(list((tmp_path / "out" / "m").glob("*.jpg"))) == 5
    assert throttled > 0, "the test must provoke throttling to mean anything"
