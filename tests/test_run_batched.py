"""What batching the hot path changes for a user: many jobs' results are written in one
transaction and claims take several jobs at once, yet a job settled elsewhere spoils no one
else's write, claims never called go back to the queue, account leases are all given back,
and a killed run pays again for at most the calls in flight."""

from __future__ import annotations

import functools
import random
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from runner.fake import serve_fake
from runner.store import Event, EventKind, JobStateError, Store, open_store
from runner.store import leases as account
from runner.store.models import events, jobs, leases
from runner.store.submit import submit_manifest
from tests.run_support import all_jobs, run, submit, write_manifest
from tests.store_fixtures import database_for, pairs, write_csv
from tests.subprocess_support import jobs_done, runner_command, runner_env, wait_until

pytestmark = pytest.mark.anyio
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


async def test_one_job_settled_elsewhere_spoils_no_other_write_of_its_batch(
    store: Store, tmp_path: Path
) -> None:
    await submit_manifest(store, write_csv(tmp_path / "a.csv", pairs(4)))
    claimed = [await store.claim_next(T0, "me") for _ in range(4)]
    ids = [job.id for job in claimed if job is not None]
    async with store.transaction(immediate=True) as conn:  # another runner took one over
        await conn.execute(sa.update(jobs).where(jobs.c.id == ids[1]).values(claimed_by="other"))
    store.runner = "me"
    outcomes: dict[int, str] = {}

    async def record(job_id: int) -> None:
        paid = Event(EventKind.CALL, job_id=job_id, batch_id=1, code="OK", worker="me")
        try:
            await store.mark_generated(
                job_id, f"https://r/{job_id}", T0 + timedelta(hours=1), "req", event=paid
            )
            outcomes[job_id] = "stored"
        except JobStateError:
            outcomes[job_id] = "settled elsewhere"

    async with anyio.create_task_group() as writer_group:
        await writer_group.start(store.writer.run)
        async with anyio.create_task_group() as callers:  # all in one event-loop turn
            for job_id in ids:
                callers.start_soon(record, job_id)
        writer_group.cancel_scope.cancel()

    assert outcomes == {i: "settled elsewhere" if i == ids[1] else "stored" for i in ids}
    async with store.transaction() as conn:
        states = dict((await conn.execute(sa.select(jobs.c.id, jobs.c.state))).all())
        recorded = sorted((await conn.scalars(sa.select(events.c.job_id))).all())
    assert states == {i: "submitting" if i == ids[1] else "generated" for i in ids}
    assert recorded == sorted(i for i in ids if i != ids[1]), "an event without its move"


async def test_jobs_claimed_ahead_go_back_to_the_queue_when_the_run_stops(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=8, latency=0.05, seed=3) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 40), server.url + "/")
        result = await run(db, server, tmp_path / "out", concurrency=8, max_jobs=5)
        rows = await all_jobs(db)
    states = [j["state"] for j in rows]
    assert result.exit_code == 4
    assert states.count("done") >= 5 and "submitting" not in states
    assert all(j["claimed_by"] is None for j in rows if j["state"] == "queued")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_a_lone_runner_on_an_account_with_a_number_gives_back_every_lease(
    tmp_path: Path, backend: str
) -> None:
    async with (
        database_for(backend, tmp_path) as db,
        serve_fake(concurrency=2, latency=0.05, seed=4) as server,
    ):
        await submit(db, write_manifest(tmp_path / "m.csv", 12), server.url + "/")
        store = await open_store(db)
        try:
            await account.set_concurrency(store, 2)
        finally:
            await store.close()
        result = await run(db, server, tmp_path / "out", concurrency=4)
        rows = await all_jobs(db)
        store = await open_store(db)
        try:
            async with store.transaction() as conn:
                held = await conn.scalar(sa.select(sa.func.count()).select_from(leases))
        finally:
            await store.close()
        stats = server.stats()
    assert result.exit_code == 0
    assert [j["state"] for j in rows] == ["done"] * 12
    assert held == 0, "a lease outlived the run"
    assert stats["max_in_flight"] <= 2 and stats["calls"] == {"OK": 12}


@pytest.mark.soak
@pytest.mark.parametrize("img_type", ["base64", "url"])
async def test_sigkill_amid_batched_writes_pays_again_at_most_the_calls_in_flight(
    tmp_path: Path, rng: random.Random, img_type: str
) -> None:
    """Many calls at once, each result written with others in one transaction (a base64
    result frees its slot only after that write): killed while they land, the reruns still
    pay for no more than the calls in flight at each kill."""
    kills, count, concurrency = 3, 60, 8
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=concurrency, latency=0.05, seed=12) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        command = [*runner_command(db, tmp_path / "out", server, concurrency)]
        command += ["--rsp-img-type", img_type]
        env = runner_env(server)
        for _ in range(kills):
            process = await anyio.open_process(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await wait_until(
                functools.partial(_at_least, db, jobs_done(db) + rng.randint(1, concurrency)),
                "results recorded",
                process,
            )
            process.send_signal(signal.SIGKILL)
            await process.wait()
            assert process.returncode == -signal.SIGKILL, "the run ended before it was killed"
        final = await anyio.run_process(command, env=env, check=False)
        stats = server.stats()
        rows = await all_jobs(db)
        store = await open_store(db)
        try:
            async with store.transaction() as conn:
                paid_events = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        events.c.kind == EventKind.CALL, events.c.code == "OK"
                    )
                )
        finally:
            await store.close()
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert [j["state"] for j in rows] == ["done"] * count
    paid = stats["calls"]["OK"]
    assert paid <= count + kills * concurrency, f"{paid} paid calls for {count} jobs"
    assert paid_events is not None and count <= paid_events <= paid


def _at_least(db: str, target: int) -> bool:
    return jobs_done(db) >= target
