"""Kill -9 the runner at random moments: a rerun finishes everything, loses nothing and
pays again for at most the calls that were in flight at each kill."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from PIL import Image

from runner.fake import FakeServer, serve_fake
from runner.store import open_store
from tests.run_support import all_jobs, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.soak]

LONG = os.environ.get("CHANGECLOTHES_SOAK") == "long"


def runner_command(db: str, out: Path, server: FakeServer, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--db",
        db,
        "--out",
        str(out),
        "--endpoint",
        server.url,
        "--concurrency",
        str(concurrency),
        "--retry-delay",
        "0.05",
        "--backoff-base",
        "0.05",
        "--backoff-cap",
        "0.3",
    ]


def runner_env(server: FakeServer) -> dict[str, str]:
    env = dict(os.environ)
    env["TENCENTCLOUD_SECRET_ID"] = server.credentials.secret_id
    env["TENCENTCLOUD_SECRET_KEY"] = server.credentials.secret_key
    env.pop("TENCENTCLOUD_SESSION_TOKEN", None)
    return env


async def test_sigkill_at_random_moments_then_rerun_finishes_everything(tmp_path: Path) -> None:
    kills, count, concurrency = (20, 300, 2) if LONG else (5, 60, 2)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    async with serve_fake(concurrency=concurrency, latency=0.2, seed=11) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        command = runner_command(db, out, server, concurrency)
        env = runner_env(server)
        for _ in range(kills):
            process = await anyio.open_process(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await anyio.sleep(rng.uniform(0.6, 1.8))
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
    served = {d["sha256"] for d in stats["downloads"]}
    for job in jobs:
        path = Path(job["output_path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == job["sha256"] in served
        with Image.open(path) as image:
            image.load()
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert files == sorted(f"job-{n:04d}.jpg" for n in range(count)), "temporary files left"
