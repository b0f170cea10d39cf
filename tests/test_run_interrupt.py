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
from tests.test_run_crash import runner_command, runner_env

pytestmark = pytest.mark.anyio


async def _wait_for_calls(server_stats: object, minimum: int) -> None:
    with anyio.fail_after(30):
        while server_stats().get("OK", 0) < minimum:  # type: ignore[operator]
            await anyio.sleep(0.05)


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
        await _wait_for_calls(lambda: server.stats()["calls"], 2)
        await anyio.sleep(0.1)  # the next calls are in flight now
        assert server.stats()["in_flight"] > 0
        process.send_signal(signum)
        with anyio.fail_after(20):
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
    async with serve_fake(concurrency=1, latency=2.0, seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        command, env = runner_command(db, out, server, 1), runner_env(server)
        process = await anyio.open_process(command, env=env, stderr=subprocess.PIPE)
        with anyio.fail_after(30):
            while server.stats()["in_flight"] == 0:
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        await anyio.sleep(0.2)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(5):
            await process.wait()  # did not wait for the 2-second call
        assert process.returncode == 130
        states = {j["state"] for j in await all_jobs(db)}
        assert states == {"queued"}, "the abandoned call's job went back to the queue"
        rerun = await anyio.run_process(command, env=env, check=False)
        assert rerun.returncode == 0
    assert {j["state"] for j in await all_jobs(db)} == {"done"}
