"""The account's leases and the runners' registry in the database, on both backends: the
limit holds across runners, one JobNumExceed episode shrinks the number once, leases go with
a dead runner, and the PostgreSQL claim reads only claimable jobs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.clock import utcnow
from runner.fake import serve_fake
from runner.store import Store, open_store
from runner.store import leases as account
from runner.store.models import jobs, runners
from runner.store.runners import STALE_AFTER, reap, register
from runner.store.submit import submit_manifest
from tests.run_support import run, submit, write_manifest
from tests.store_fixtures import pairs, write_csv

pytestmark = pytest.mark.anyio


async def add_jobs(store: Store, tmp_path: Path, n: int) -> None:
    result = await submit_manifest(store, write_csv(tmp_path / "m.csv", pairs(n)))
    assert result.queued == n


async def lapse(store: Store, runner_id: str) -> None:
    """The runner's heartbeat is older than the stale bound (its machine slept)."""
    async with store.transaction(immediate=True) as conn:
        await conn.execute(
            sa.update(runners)
            .where(runners.c.id == runner_id)
            .values(heartbeat=utcnow() - STALE_AFTER - timedelta(seconds=1), host="elsewhere")
        )


async def test_the_account_limit_holds_across_runners(store: Store, tmp_path: Path) -> None:
    await add_jobs(store, tmp_path, 5)
    await account.set_concurrency(store, 2)
    for name in ("a", "b"):
        await register(store, name)
    first = await account.claim_with_lease(store, "a", STALE_AFTER)
    second = await account.claim_with_lease(store, "b", STALE_AFTER)
    third = await account.claim_with_lease(store, "b", STALE_AFTER)
    assert first.job and first.lease_id and second.job and second.lease_id
    assert third.full and third.job is None, "a third call while the account has two"
    await account.release(store, first.lease_id)
    again = await account.claim_with_lease(store, "b", STALE_AFTER)
    assert again.job is not None and again.lease_id is not None


async def test_a_dead_runners_leases_are_taken_back_with_it(store: Store, tmp_path: Path) -> None:
    await add_jobs(store, tmp_path, 3)
    await account.set_concurrency(store, 1)
    for name in ("alive", "asleep"):
        await register(store, name)
    held = await account.claim_with_lease(store, "asleep", STALE_AFTER)
    assert held.job is not None
    assert (await account.claim_with_lease(store, "alive", STALE_AFTER)).full
    await lapse(store, "asleep")
    reaped = await reap(store, "alive", STALE_AFTER)
    assert reaped.runners == ["asleep"] and reaped.recovered == 1
    assert await account.list_leases(store) == []
    taken = await account.claim_with_lease(store, "alive", STALE_AFTER)
    assert taken.job is not None and taken.job.id == held.job.id


async def test_one_busy_episode_shrinks_the_account_once(store: Store) -> None:
    await account.set_concurrency(store, 4)
    seen = await account.get_account(store)
    # Two runners both got JobNumExceed for calls sent under the same number.
    assert await account.shrink(store, seen) == 2
    assert await account.shrink(store, seen) is None
    assert (await account.get_account(store)).limit == 2
    await account.grow(store, 2)  # a full round of successes at 2
    assert (await account.get_account(store)).limit == 3
    await account.grow(store, 3)
    shown = await account.get_account(store)
    assert (shown.limit, shown.effective) == (4, None), "back to the account's number"


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_the_postgresql_claim_reads_only_claimable_jobs(store: Store, tmp_path: Path) -> None:
    await add_jobs(store, tmp_path, 3000)
    async with store.transaction(immediate=True) as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.id > 10).values(state="done"))
        await conn.execute(sa.text("ANALYZE jobs"))
    pick = (
        sa.select(jobs.c.id)
        .where(
            jobs.c.state == "queued",
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= utcnow()),
        )
        .order_by(jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    compiled = pick.compile(store.engine, compile_kwargs={"literal_binds": True})
    async with store.transaction() as conn:
        plan = "\n".join((await conn.execute(sa.text(f"EXPLAIN {compiled}"))).scalars())
    assert "ix_jobs_claimable" in plan, plan


async def invoke(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


async def test_account_commands_and_status_show_the_runners(store: Store, db: str) -> None:
    set_result = await invoke("account", "set-concurrency", "3", "--db", db)
    assert set_result.exit_code == 0, set_result.output
    await register(store, "here")
    await register(store, "asleep")
    await lapse(store, "asleep")
    async with store.transaction(immediate=True) as conn:  # a lease the sleeper still holds
        await conn.execute(sa.insert(account.leases).values(runner_id="asleep", taken_at=utcnow()))

    shown = await invoke("account", "show", "--db", db)
    assert shown.exit_code == 0, shown.output
    assert "Concurrency: 3" in shown.output and "Leases held: 1" in shown.output
    data = json.loads((await invoke("account", "show", "--json", "--db", db)).output)
    assert data["concurrency"] == 3 and [h["runner"] for h in data["leases"]] == ["asleep"]

    status = await invoke("status", "--db", db)
    assert status.exit_code == 0, status.output
    live, stale = status.output.split("Stale runners")
    assert "Runners:" in live and "leases 0" in live
    assert "elsewhere pid" in stale and "leases 1" in stale
    listed = json.loads((await invoke("status", "--json", "--db", db)).output)["runners"]
    assert {r["id"]: r["alive"] for r in listed} == {"here": True, "asleep": False}

    refused = await invoke("account", "set-concurrency", "0", "--db", db)
    assert refused.exit_code == 2 and "0" in refused.output


async def test_job_num_exceed_lowers_the_accounts_number_for_every_runner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "queue.db")
    # Someone outside the queue uses one of the account's two slots: the fake allows one.
    async with serve_fake(concurrency=1, latency=0.1, seed=3) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 12), server.url + "/")
        store = await open_store(db)
        try:
            await account.set_concurrency(store, 2)
        finally:
            await store.close()
        with caplog.at_level(logging.WARNING, logger="runner.scheduler.leases"):
            result = await run(db, server, tmp_path / "out", concurrency=2)
        stats = server.stats()
    assert result.exit_code == 0
    assert stats["calls"]["OK"] == 12
    assert "Lowering the account's concurrency to 1 for every runner" in caplog.text
