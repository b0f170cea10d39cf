"""Results in a bucket under a bad night: runners killed with SIGKILL mid-run, and two runners
on one PostgreSQL queue writing to one bucket. Each job ends with exactly one object, the one
the database records, and a kill costs at most the calls in flight."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from runner.fake import FakeServer, serve_fake
from runner.objects import BucketLocation
from tests.bucket_support import bucket_env, check_results
from tests.run_support import all_jobs, run, submit, write_manifest
from tests.s3_support import MotoServer
from tests.store_fixtures import fresh_pg_database
from tests.subprocess_support import calls_arrived, jobs_done, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

BUCKET = "night-results"
OUT = f"s3://{BUCKET}/out"


def _command(db: str, server: FakeServer, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "runner", "run", "--db", db, "--out", OUT,
        "--endpoint", server.url, "--concurrency", str(concurrency),
        "--retry-delay", "0.05", "--backoff-base", "0.05", "--backoff-cap", "0.3",
    ]  # fmt: skip


async def _kill_point(
    moto: MotoServer, db: str, server: FakeServer, process: Process, kind: int
) -> None:
    """Kill on an event: a call arriving (mid-call), an object landing in the bucket (between
    the upload and its record, often), or a result recorded."""
    if kind == 0:
        arrived = calls_arrived(server)
        await wait_until(lambda: calls_arrived(server) > arrived, "a new call arrived", process)
    elif kind == 1:
        stored = len(moto.objects(BUCKET))
        await wait_until(lambda: len(moto.objects(BUCKET)) > stored, "a new object", process)
    else:
        target = jobs_done(db) + 2
        await wait_until(lambda: jobs_done(db) >= target, f"{target} results recorded", process)


@pytest.mark.soak
async def test_sigkill_while_writing_to_a_bucket_then_rerun(
    tmp_path: Path, moto_server: MotoServer, rng: random.Random
) -> None:
    moto_server.make_bucket(BUCKET)
    count, concurrency = 30, 2
    db = str(tmp_path / "queue.db")
    home = tmp_path / "home"
    home.mkdir()
    async with serve_fake(concurrency=concurrency, latency=0.1, seed=12) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        env = bucket_env(home, server, moto_server)
        command = _command(db, server, concurrency)
        # Every kind of kill point at least once, in a seeded order: one of them waits for
        # results recorded, so work is under way whatever the machine's load.
        kinds = [0, 1, 2, rng.randint(0, 2)]
        rng.shuffle(kinds)
        kills = len(kinds)
        for kind in kinds:
            process = await anyio.open_process(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await _kill_point(moto_server, db, server, process, kind)
            assert process.returncode is None, "the run ended before it was killed"
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert 0 < jobs_done(db) < count, "the kills must land while work goes on"
        final = await anyio.run_process(command, env=env, check=False)
        stats = server.stats()
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    jobs = await all_jobs(db)
    assert stats["calls"]["OK"] <= count + kills * concurrency, stats["calls"]
    found = check_results(moto_server, BUCKET, jobs)
    assert set(moto_server.objects(BUCKET)) == set(found), "an object no job records"
    assert len(found) == count, "every object present once"
    state = tmp_path / "queue.state"
    assert not list(state.glob("*.part")), "temporary files left on local disk"


@pytest.mark.pg
async def test_two_runners_one_postgresql_queue_one_bucket(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    moto_server.make_bucket(BUCKET)
    async with fresh_pg_database() as db, serve_fake(concurrency=2, latency=0.1, seed=8) as srv:
        await submit(db, write_manifest(tmp_path / "m.csv", 30), srv.url + "/")
        codes: dict[str, int] = {}

        async def one(name: str) -> None:
            # Two hosts: each its own local state folder, both the same bucket.
            result = await run(
                db,
                srv,
                tmp_path / name,
                worker=name,
                bucket=BucketLocation.parse(OUT),
                object_store=moto_server.config,
                state_dir=tmp_path / name,
            )
            codes[name] = result.exit_code

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "host-a")
            tg.start_soon(one, "host-b")
        stats = srv.stats()
        jobs = await all_jobs(db)
    assert codes == {"host-a": 0, "host-b": 0}
    assert stats["calls"] == {"OK": 30}, "a job was paid for twice"
    found = check_results(moto_server, BUCKET, jobs)
    assert set(moto_server.objects(BUCKET)) == set(found)
    assert len(found) == 30, "one object per job"
    puts = [r for r in moto_server.requests() if r[0] == "PUT" and r[1].startswith(f"/{BUCKET}/")]
    assert len(puts) == 30, "each result uploaded once"
