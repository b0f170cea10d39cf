"""Kill -9 the runner at random moments: a rerun finishes everything, loses nothing and
pays again for at most the calls that were in flight at each kill."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from PIL import Image

from runner.fake import FakeServer, serve_fake
from runner.store import open_store
from tests.run_support import all_jobs, submit, write_manifest
from tests.store_fixtures import assert_counts_agree
from tests.subprocess_support import (
    calls_arrived,
    jobs_done,
    runner_command,
    runner_env,
    wait_until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.soak]

LONG = os.environ.get("CHANGECLOTHES_SOAK") == "long"


async def _kill_point(
    rng: random.Random, db: str, server: FakeServer, process: Process, last: bool
) -> None:
    """Wait for the event this kill follows: a new call arriving at the fake (the kill lands
    mid-call), or a few more results recorded (mid-run, with work done). A short random
    pause after it varies the moment: mid-download, mid-write, between claims."""
    if rng.random() < 0.5 and not last:
        arrived = calls_arrived(server)
        await wait_until(lambda: calls_arrived(server) > arrived, "a new call arrived", process)
    else:
        target = jobs_done(db) + rng.randint(1, 4)
        await wait_until(lambda: jobs_done(db) >= target, f"{target} results recorded", process)
    await anyio.sleep(rng.uniform(0, 0.15))


async def test_sigkill_at_random_moments_then_rerun_finishes_everything(
    tmp_path: Path, rng: random.Random
) -> None:
    kills, count, concurrency = (20, 300, 2) if LONG else (5, 60, 2)
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    async with serve_fake(concurrency=concurrency, latency=0.2, seed=11) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        command = runner_command(db, out, server, concurrency)
        env = runner_env(server)
        for kill in range(kills):
            process = await anyio.open_process(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await _kill_point(rng, db, server, process, last=kill == kills - 1)
            assert process.returncode is None, "the run ended before it was killed"
            process.send_signal(signal.SIGKILL)
            await process.wait()
            assert process.returncode == -signal.SIGKILL, "the run ended before it was killed"
        before = [j["state"] for j in await all_jobs(db)]
        assert 0 < before.count("done") < count, "the kills must land while work goes on"
        final = await anyio.run_process(command, env=env, check=False)
        stats = server.stats()
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    jobs = await all_jobs(db)
    assert [j["state"] for j in jobs] == ["done"] * count
    paid = stats["calls"]["OK"]
    assert paid <= count + kills * concurrency, f"{paid} paid calls for {count} jobs"
    # The events table (what cost accounting reads) agrees with the jobs: each recorded paid
    # call is exactly one kept result, since a call's record and its effect are one write.
    store = await open_store(db)
    try:
        summary = await store.event_summary()
    finally:
        await store.close()
    assert summary.paid_calls == count
    await assert_counts_agree(db)  # killed mid-transaction: the counts moved with the jobs
    served = {d["sha256"] for d in stats["downloads"]}
    for job in jobs:
        path = Path(job["output_path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == job["sha256"] in served
        with Image.open(path) as image:
            image.load()
    files = sorted(
        p.name for p in out.rglob("*") if p.is_file() and not p.match("run-*.json")
    )  # each run leaves its summary, run-<time>.json
    assert files == sorted(f"job-{n:04d}.jpg" for n in range(count)), "temporary files left"
