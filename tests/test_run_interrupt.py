"""Ctrl-C (or SIGTERM) stops claiming, lets the calls in flight finish, exits 130, and the
rerun resumes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from runner.fake import serve_fake
from tests.run_support import all_jobs, submit, write_manifest
from tests.subprocess_support import (
    EVENT_TIMEOUT,
    read_until,
    runner_command,
    runner_env,
    wait_until,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_one_signal_finishes_in_flight_work_and_exits_130(
    tmp_path: Path, signum: signal.Signals
) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    async with serve_fake(concurrency=2, latency=0.5, seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 20), server.url + "/")
        command, env = runner_command(db, out, server, 2), runner_env(server)
        process = await anyio.open_process(command, env=env, stderr=subprocess.PIPE)
        # Two calls paid, and the next ones already at the fake: there is work in flight.
        await wait_until(lambda: server.stats()["calls"].get("OK", 0) >= 2, "2 paid calls", process)
        await wait_until(lambda: server.stats()["in_flight"] > 0, "a call in flight", process)
        process.send_signal(signum)
        with anyio.fail_after(EVENT_TIMEOUT):
            await process.wait()
        assert process.returncode == 130
        paid_before_rerun = server.stats()["calls"]["OK"]
        jobs = await all_jobs(db)
        states = [j["state"] for j in jobs]
        assert set(states) <= {"done", "queued"}, states
        assert states.count("done") == paid_before_rerun, "every paid call was kept"
        assert 0 < states.count("done") < 20

        rerun = await anyio.run_process(command, env=env, check=False)
        assert rerun.returncode == 0
        assert server.stats()["calls"]["OK"] == 20, "nothing paid twice"
    assert {j["state"] for j in await all_jobs(db)} == {"done"}


async def test_second_signal_abandons_safely(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    # One job whose call takes 5 s: the runner must be gone long before it is answered.
    async with serve_fake(concurrency=1, latency=5.0, seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 1), server.url + "/")
        command, env = runner_command(db, out, server, 1), runner_env(server)
        process = await anyio.open_process(command, env=env, stderr=subprocess.PIPE)
        await wait_until(lambda: server.stats()["in_flight"] > 0, "a call in flight", process)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        await read_until(process.stderr, "Press Ctrl-C again", "the first signal's notice")
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(EVENT_TIMEOUT):
            await process.wait()
        assert process.returncode == 130
        stats = server.stats()
        assert stats["in_flight"] == 1 and not stats["calls"], "it did not wait for the call"
        states = {j["state"] for j in await all_jobs(db)}
        assert states == {"queued"}, "the abandoned call's job went back to the queue"
        rerun = await anyio.run_process(command, env=env, check=False)
        assert rerun.returncode == 0
    assert {j["state"] for j in await all_jobs(db)} == {"done"}
