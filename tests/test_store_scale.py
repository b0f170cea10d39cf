"""Flat cost at any queue size: on a big queue with planner statistics, claiming and settling
read only the claimable and waiting jobs (checked with EXPLAIN on the statements the store
really runs); the counts `status` reads stay equal to a count over every job whoever writes;
and `status` on an up-to-date SQLite queue loads neither Alembic nor PostgreSQL's driver."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runner.store import (
    JobSelection,
    Store,
    UnknownBatchError,
    move_selected,
    open_store,
    retry_failed,
)
from runner.store.claim_floor import ClaimFloor
from runner.store.database import create_engine, database_url, migrate
from runner.store.models import batches
from runner.store.reports import invalid_rows_of
from runner.store.runners import list_runners, reap, register
from runner.store.snapshot import read_status
from runner.store.submit import submit_manifest
from tests.store_fixtures import assert_counts_agree, database_for, pairs, write_csv

pytestmark = pytest.mark.anyio

BIG = 50_000  # enough for the planner to prefer a scan where an index would not be sure
NOW = datetime(2026, 12, 3, tzinfo=UTC)


async def _fill(store: Store, total: int, done_share: float) -> None:
    """`total` jobs in one batch, `done_share` of them done, written with bulk SQL; on
    PostgreSQL they are queued first and then done (dead rows, as a queue worked through
    leaves them) and autovacuum is kept off: the worst case, nothing vacuumed."""
    done = int(total * done_share)
    async with store.transaction(immediate=True) as conn:
        batch_id = (
            await conn.execute(
                sa.insert(batches)
                .values(name="big", source_path="big.csv", content_sha256="0" * 64)
                .values(submitted_at=NOW, options={})
                .returning(batches.c.id)
            )
        ).scalar_one()
        columns = (
            "batch_id, external_id, model_url, clothes_url, clothes_type, options, dedupe_key, "
            "state, attempts, regenerations, created_at, updated_at"
        )
        if store.dialect == "sqlite":
            await conn.exec_driver_sql(
                f"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < {total})"
                f" INSERT INTO jobs ({columns}) SELECT {batch_id}, 'big-' || i, 'https://m/' || i,"
                " 'https://c', 'Dress', '{}', printf('%064d', i),"
                f" CASE WHEN i <= {done} THEN 'done' ELSE 'queued' END, 0, 0,"
                " '2026-12-03 00:00:00.000000', '2026-12-03 00:00:00.000000' FROM r"
            )
        else:
            await conn.exec_driver_sql("ALTER TABLE jobs SET (autovacuum_enabled = off)")
            await conn.exec_driver_sql(
                f"INSERT INTO jobs ({columns}) SELECT {batch_id}, 'big-' || i, 'https://m/' || i,"
                " 'https://c', 'Dress', '{}', lpad(i::text, 64, '0'), 'queued', 0, 0, now(), "
                f"now() FROM generate_series(1, {total}) AS i"
            )
    async with store.transaction(immediate=True) as conn:
        if store.dialect != "sqlite":
            await conn.exec_driver_sql(
                f"UPDATE jobs SET state = 'done' WHERE batch_id = {batch_id} AND id <= "
                f"(SELECT min(id) FROM jobs WHERE batch_id = {batch_id}) + {done - 1}"
            )
        await conn.exec_driver_sql("ANALYZE")


async def _explain(store: Store, statement: str, params: Any, *, generic: bool) -> str:
    async with store.transaction() as conn:
        if store.dialect == "sqlite":
            result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            return "\n".join(str(detail) for *_, detail in result)
        if generic:  # the plan a prepared statement settles on after its first five runs
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        result = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
        return "\n".join(str(line) for line, *_ in result)


async def test_claim_and_settle_read_only_claimable_and_waiting_jobs(store: Store) -> None:
    # SQLite: every job queued, the statistics then say each state holds every job (its
    # worst case); PostgreSQL: 90 % done and not vacuumed.
    await _fill(store, BIG, 0.9 if store.dialect == "postgresql" else 0.0)
    ran: list[tuple[str, Any]] = []

    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        ran.append((statement, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
    leader = await store.claim_next(NOW, worker="w")
    assert leader is not None
    async with store.transaction(immediate=True) as conn:  # one job waits for the leader
        follower_id = (
            await conn.exec_driver_sql("SELECT max(id) FROM jobs WHERE state = 'queued'")
        ).scalar_one()
        await conn.exec_driver_sql(
            f"UPDATE jobs SET state = 'linked', linked_job_id = {leader.id} "
            f"WHERE id = {follower_id}"
        )
    ran.clear()
    await store.mark_done(leader.id, "/out/a.jpg", "a" * 64, 1, now=NOW)  # with a follower
    alone = await store.claim_next(NOW, worker="w")
    assert alone is not None
    await store.mark_done(alone.id, "/out/b.jpg", "b" * 64, 1, now=NOW)  # none waits
    # A runner's heartbeat: it registers, takes back dead runners' jobs, is listed.
    await register(store, "w", pid=1, host="elsewhere")
    await reap(store, "w", timedelta(seconds=60))
    await list_runners(store)
    event.remove(store.engine.sync_engine, "before_cursor_execute", grab)

    on_jobs = [(s, p) for s, p in ran if " jobs" in s and not s.startswith("INSERT INTO jobs")]
    claims = [(s, p) for s, p in on_jobs if "claimed_by" in s and "LIMIT" in s]
    # Each settle asks whether a job waits for it (in the statement that picks the jobs),
    # and the one with a follower moves it: three statements that look up waiting jobs.
    followers = [
        (s, p) for s, p in on_jobs if "linked_job_id IN" in s or "linked_job_id = jobs.id" in s
    ]
    assert claims and len(followers) >= 3, "the claim, the settles' probes, the followers' move"
    for generic in (False, True) if store.dialect == "postgresql" else (False,):
        for statement, params in on_jobs:
            plan = await _explain(store, statement, params, generic=generic)
            full_scan = [
                line
                for line in plan.splitlines()
                if line.strip() == "SCAN jobs" or "Seq Scan on jobs" in line
            ]
            assert not full_scan, f"a full scan of jobs:\n{statement}\n{plan}"
            if (statement, params) in claims:
                assert "ix_jobs_claimable" in plan, f"{statement}\n{plan}"
            if (statement, params) in followers:  # the waiting jobs' index, or their state's
                narrowed = "ix_jobs_linked_waiting" in plan or any(
                    m in plan for m in ("(state=?", "(state)::text = 'linked'::text")
                )
                assert narrowed, f"{statement}\n{plan}"
    follower = await store.get_job(follower_id)
    assert follower is not None and follower.state == "done"  # settled with its leader

    # A job linked to a leader settled in the same moment elsewhere is left waiting (a race):
    # the sweep of an idle run finds it through the waiting jobs' index, not the done ones.
    async with store.transaction(immediate=True) as conn:
        await conn.exec_driver_sql(
            f"UPDATE jobs SET state = 'linked', linked_job_id = {alone.id} WHERE id = "
            "(SELECT max(id) FROM jobs WHERE state = 'queued')"
        )
    ran.clear()
    event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
    assert await store.settle_stranded(now=NOW) == 1
    event.remove(store.engine.sync_engine, "before_cursor_execute", grab)
    sweep = [(s, p) for s, p in ran if "linked_job_id" in s]
    assert len(sweep) >= 3, "the probe, the leaders found, the followers' move"
    for statement, params in sweep:
        plan = await _explain(store, statement, params, generic=False)
        assert "SCAN jobs" not in plan and "Seq Scan" not in plan, f"{statement}\n{plan}"
        if "waited_for" in statement:  # the waiting jobs' index, or their state's
            assert "ix_jobs_linked_waiting" in plan or any(
                m in plan for m in ("(state=?", "(state)::text = 'linked'::text")
            ), f"{statement}\n{plan}"
    await assert_counts_agree(str(store.url.render_as_string(hide_password=False)))


async def test_counts_follow_submit_cancel_retry_and_replace(db: str, tmp_path: Path) -> None:
    async with await open_store(db) as store:
        first = write_csv(tmp_path / "night.csv", pairs(12))
        await submit_manifest(store, first, batch="night")
        await assert_counts_agree(db)
        # Identical rows in another batch: they wait for the first batch's jobs (linked).
        await submit_manifest(store, write_csv(tmp_path / "again.csv", pairs(5)), batch="again")
        await assert_counts_agree(db)
        job = await store.claim_next(NOW, worker="w")
        assert job is not None
        await store.mark_failed(job.id, "FailedOperation.ImageDecodeFailed", "bad", now=NOW)
        await assert_counts_agree(db)
        await move_selected(store, "cancel", JobSelection("night", ids=["r3", "r4"]))
        await assert_counts_agree(db)
        await retry_failed(store, "night")
        await assert_counts_agree(db)
        changed = pairs(12)
        changed[5][2] = "https://img.test/c/changed.jpg"
        await submit_manifest(
            store, write_csv(tmp_path / "night2.csv", changed), batch="night", replace=True
        )
        await assert_counts_agree(db)
        while (claimed := await store.claim_next(NOW, worker="w")) is not None:
            await store.mark_done(claimed.id, f"/o/{claimed.id}.jpg", "c" * 64, 1, now=NOW)
        await assert_counts_agree(db)
        totals = await store.state_totals()
    assert totals["done"] > 0 and totals["cancelled"] == 2


def submitted_queue(tmp_path: Path) -> Path:
    """A SQLite queue at head with three jobs, made by the real `submit` command."""
    db = tmp_path / "queue.db"
    write_csv(tmp_path / "m.csv", pairs(3))
    subprocess.run(
        [sys.executable, "-m", "runner", "submit", str(tmp_path / "m.csv"), "--db", str(db)],
        check=True,
        capture_output=True,
    )
    return db


def test_status_on_a_current_sqlite_queue_loads_no_database_library(
    tmp_path: Path,
) -> None:
    db = submitted_queue(tmp_path)
    probe = (
        "import json, sys\n"
        "from runner.cli import main\n"
        f"sys.argv = ['changeclothes', 'status', '--json', '--db', {str(db)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    unwanted = [
        m for m in loaded if m.split(".")[0] in ("alembic", "asyncpg", "sqlalchemy", "aiosqlite")
    ]
    assert unwanted == []
    assert '"total": 3' in done.stdout  # and status did its work


async def test_status_read_without_sqlalchemy_agrees_with_the_store(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    rows = [*pairs(6), ["bad", "not a url", "https://img.test/c.jpg", "Sweater"]]
    async with await open_store(db) as store:
        await submit_manifest(store, write_csv(tmp_path / "m.csv", rows), skip_invalid=True)
        await register(store, "host-a:1", pid=1, host="elsewhere")
        claimed = await store.claim_next(NOW, worker="host-a:1")
        assert claimed is not None
        stale = timedelta(seconds=30)
        expected = (
            await store.counts(),
            *(await invalid_rows_of(store, None, limit=20)),
            await list_runners(store, stale),
        )
        only_m = await store.counts("m")
    seen = read_status(Path(db), None, invalid_limit=20, stale_after=stale)
    assert seen is not None
    assert (seen.counts, seen.invalid, seen.invalid_counts, seen.runners) == expected
    assert seen.invalid and seen.runners and seen.runners[0].in_flight == 1
    one = read_status(Path(db), "m", invalid_limit=20, stale_after=stale)
    assert one is not None and one.counts == only_m
    with pytest.raises(UnknownBatchError):
        read_status(Path(db), "nope", invalid_limit=20, stale_after=stale)


async def test_a_queue_behind_head_is_not_read_around_the_migrations(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = create_engine(database_url(str(db)))
    try:
        await migrate(engine, "0006")
    finally:
        await engine.dispose()
    assert read_status(db, None, invalid_limit=20, stale_after=timedelta(seconds=30)) is None


@pytest.mark.parametrize(
    "command", [["export", "--output", "x.csv"], ["report", "--output", "r.html"]]
)
def test_reading_commands_on_a_current_sqlite_queue_load_no_alembic_nor_postgresql(
    tmp_path: Path, command: list[str]
) -> None:
    db = submitted_queue(tmp_path)
    argv = ["changeclothes", *command, "--db", str(db)]
    probe = (
        "import json, sys\n"
        "from runner.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    unwanted = [
        m
        for m in loaded
        if m.split(".")[0] in ("alembic", "asyncpg")
        or m.startswith("sqlalchemy.dialects.postgresql")
    ]
    assert unwanted == []


@pytest.mark.pg
async def test_postgresql_claims_do_not_step_over_dead_index_entries(tmp_path: Path) -> None:
    """Finished jobs leave dead entries in the claimable index until VACUUM; after the first
    claim, the next ones start at the claim floor and read a handful of index pages."""
    async with database_for("postgresql", tmp_path) as db, await open_store(db) as store:
        await _fill(store, BIG, 0.9)
        ran: list[tuple[str, Any]] = []

        def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _m: bool) -> None:
            if statement.startswith("UPDATE jobs") and "LIMIT" in statement:
                ran.append((statement, params))

        store.runner = "w"  # a run's store: its claims use the floor
        event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
        for _ in range(3):
            assert await store.claim_next(NOW, worker="w") is not None
        event.remove(store.engine.sync_engine, "before_cursor_execute", grab)
        pages = [await _pages_read(store, statement, params) for statement, params in ran]
    first, *later = pages
    assert first > 100, f"the first claim looks from the oldest job: {pages}"
    assert max(later) < 60, f"later claims start at the floor: {pages}"


async def _pages_read(store: Store, statement: str, params: Any) -> int:
    """Buffers the statement touched, run under EXPLAIN ANALYZE and rolled back."""
    async with store.engine.connect() as conn:
        transaction = await conn.begin()
        result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        lines = [str(line) for line, *_ in result]
        await transaction.rollback()
    touched = [
        sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", line))
        for line in lines
        if "Buffers:" in line
    ]
    return max(touched)


def test_a_job_put_back_during_a_claim_is_not_skipped_by_the_floor() -> None:
    """A requeue that lands while a claim is under way (the batched writer runs beside the
    claim loop) keeps the floor at or below it: the next claim sees that job again."""
    floor = ClaimFloor(enabled=True)
    floor.claimed(100, searched_from=0)  # a full search took job 100
    start = floor.lowest()
    assert start == 100
    floor.requeued(40)  # meanwhile job 40 went back to the queue
    floor.claimed(130, searched_from=start)  # the claim that started at 100 ends
    assert floor.lowest() <= 40
