"""A linked job never waits forever behind a leader that already ended; a write that loses a
deadlock to another runner's is run again, not failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from runner.clock import utcnow
from runner.fake import serve_fake
from runner.store import Store, open_store
from runner.store.errors import StoreConflict
from runner.store.models import events, jobs
from runner.store.submit import submit_manifest
from tests.run_support import all_jobs, run
from tests.store_fixtures import fresh_pg_database, job_rows, pairs, write_csv

pytestmark = pytest.mark.anyio


async def _strand(store: Store, tmp_path: Path, result: Path) -> None:
    """Four jobs: 1 done with `result`, 2 linked to it; 3 failed, 4 linked to it: the
    situation a follower linked during its leader's settle was left in."""
    await submit_manifest(store, write_csv(tmp_path / "m.csv", pairs(4)))
    now = utcnow()
    async with store.transaction(immediate=True) as conn:
        await conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == 1)
            .values(
                state="done", output_path=str(result), sha256="ab" * 32, bytes=7, finished_at=now
            )
        )
        await conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == 3)
            .values(
                state="failed",
                last_error_code="FailedOperation.ImageDecodeFailed",
                last_error_message="bad image",
                finished_at=now,
            )
        )
        for follower, leader in ((2, 1), (4, 3)):
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == follower)
                .values(state="linked", linked_job_id=leader)
            )


async def test_followers_of_a_finished_leader_take_its_outcome(
    store: Store, tmp_path: Path
) -> None:
    await _strand(store, tmp_path, tmp_path / "r0.jpg")
    assert await store.has_work()
    assert await store.settle_stranded() == 2
    assert not await store.has_work()
    rows = {r["id"]: r for r in await job_rows(store)}
    assert rows[2]["state"] == "done"
    assert (rows[2]["output_path"], rows[2]["sha256"], rows[2]["bytes"]) == (
        str(tmp_path / "r0.jpg"),
        "ab" * 32,
        7,
    )
    assert rows[4]["state"] == "failed"
    assert rows[4]["last_error_code"] == "FailedOperation.ImageDecodeFailed"
    async with store.transaction() as conn:
        written = (
            await conn.execute(sa.select(events.c.job_id, events.c.kind, events.c.code))
        ).all()
    assert sorted(written) == [
        (2, "linked", "OK"),
        (4, "linked", "FailedOperation.ImageDecodeFailed"),
    ]
    assert await store.settle_stranded() == 0, "nothing is left to settle"


async def test_a_run_ends_when_a_follower_was_left_behind(db: str, tmp_path: Path) -> None:
    result = tmp_path / "out" / "earlier" / "r0.jpg"
    result.parent.mkdir(parents=True)
    result.write_bytes(b"\xff\xd8 jpeg")
    store = await open_store(db)
    try:
        await _strand(store, tmp_path, result)
    finally:
        await store.close()
    async with serve_fake(seed=1) as server:
        with anyio.fail_after(120):  # before the sweep, this run never ended
            outcome = await run(db, server, tmp_path / "out")
        assert server.stats()["calls"].get("OK", 0) == 0, "nothing was paid for"
    assert outcome.exit_code == 1, "it finished; the failed leader's follower failed too"
    states = {j["id"]: j["state"] for j in await all_jobs(db)}
    assert states == {1: "done", 2: "done", 3: "failed", 4: "failed"}


@pytest.mark.pg
async def test_a_batch_that_loses_a_deadlock_is_written_again(tmp_path: Path) -> None:
    """The writer's batch locks job 1, then waits for job 2, held by another transaction
    that then asks for job 1: PostgreSQL breaks the deadlock by rolling the batch back (the
    other side's deadlock_timeout is set long, so the batch is the one chosen). The batch
    is run again and every write of it succeeds."""
    async with fresh_pg_database() as url:
        other = create_async_engine(url)
        async with other.connect() as admin:
            # The batch's side looks for deadlocks after 2 s of waiting: the other side
            # closes the cycle well within that.
            name = sa.engine.make_url(url).database
            await admin.execute(sa.text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '2s'"))
            await admin.commit()
        store = await open_store(url)
        try:
            await submit_manifest(store, write_csv(tmp_path / "m.csv", pairs(2)))
            for _ in range(2):
                assert await store.claim_next(utcnow(), "w1") is not None
            writer = store.writer
            async with other.connect() as blocker, anyio.create_task_group() as tg:
                await blocker.begin()
                await blocker.execute(sa.text("SET LOCAL deadlock_timeout = '60s'"))
                await blocker.execute(sa.text("SELECT id FROM jobs WHERE id = 2 FOR UPDATE"))
                await tg.start(writer.run)
                pids: list[int] = []

                async def settle(job_id: int) -> None:
                    await store.mark_done(job_id, f"/r/{job_id}.jpg", "cd" * 32, 9)

                # Both writes go in one batch: the writer takes them in one loop turn.
                tg.start_soon(settle, 1)
                tg.start_soon(settle, 2)
                async with other.connect() as admin:
                    while not pids:
                        pids = list(
                            (
                                await admin.scalars(
                                    sa.text(
                                        "SELECT pid FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock' AND datname = "
                                        "current_database()"
                                    )
                                )
                            ).all()
                        )
                        await anyio.sleep(0.02)
                # Job 1 is the batch's: waiting for it closes the cycle; the batch is rolled
                # back, which lets this through.
                await blocker.execute(sa.text("SELECT id FROM jobs WHERE id = 1 FOR UPDATE"))
                await blocker.commit()
                while any(r["state"] != "done" for r in await job_rows(store)):
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()
            assert [r["state"] for r in await job_rows(store)] == ["done", "done"]
        finally:
            await other.dispose()
            await store.close()


async def _serialization_failure(url: str) -> BaseException:
    """A real serialization failure: two REPEATABLE READ transactions update one row."""
    engine = create_async_engine(url, isolation_level="REPEATABLE READ")
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(sa.text("SELECT state FROM jobs WHERE id = 1"))
            await second.execute(sa.text("UPDATE jobs SET attempts = attempts + 1 WHERE id = 1"))
            await second.commit()
            try:
                await first.execute(sa.text("UPDATE jobs SET attempts = 0 WHERE id = 1"))
            except sa.exc.DBAPIError as exc:
                return exc
            raise AssertionError("no serialization failure")
    finally:
        await engine.dispose()


@pytest.mark.pg
async def test_a_conflict_that_keeps_coming_ends_in_one_sentence(tmp_path: Path) -> None:
    """A conflict is a StoreConflict (exit 5, one sentence); a batch that keeps losing is
    tried a few times, then every write of it fails with it."""
    async with fresh_pg_database() as url:
        store = await open_store(url)
        try:
            await submit_manifest(store, write_csv(tmp_path / "m.csv", pairs(1)))
            failure = await _serialization_failure(url)
            assert getattr(failure.orig, "sqlstate", None) == "40001"  # type: ignore[attr-defined]
            with pytest.raises(StoreConflict, match="conflicted with another runner"):
                async with store.transaction(immediate=True):
                    raise failure
            tries: list[Any] = []
            real = store.transaction

            def losing(**kw: Any) -> Any:
                tries.append(kw)
                return _raising(real, failure)

            store.transaction = losing  # type: ignore[method-assign]
            async with anyio.create_task_group() as tg:
                await tg.start(store.writer.run)
                with pytest.raises(StoreConflict) as caught:
                    await store.mark_failed(1, "X", "y")
                tg.cancel_scope.cancel()
            assert len(tries) == 4, "the batch was tried again three times"
            assert "\n" not in str(caught.value)
        finally:
            store.__dict__.pop("transaction", None)
            await store.close()


def _raising(real: Any, failure: BaseException) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def transaction() -> Any:
        async with real(immediate=True) as conn:
            yield conn
            raise failure

    return transaction()
