"""Runners on one queue: each `run` registers itself and renews a heartbeat; the jobs of a
runner that is gone go back to the living.

A job's claim (`jobs.claimed_by`) names a runner. It stays that runner's for as long as the
runner's row is here: another runner takes a claim back only after it has deleted the row
of a runner whose heartbeat is older than `stale_after`, or of one on this host whose
process is gone, and it does both in one transaction. A runner renews its heartbeat in the
same transactions in which it claims, so one that finds its row gone (or its heartbeat
lapsed, as after the machine slept) learns it is declared dead before it claims again.

Heartbeats are read and written with the database's clock on PostgreSQL, so that hosts whose
clocks differ still agree on who is stale; SQLite is one host, one clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.store.base import JOB_COLUMNS, StoreBase
from runner.store.jobs import Job
from runner.store.lifecycle import JobState, apply, state_is
from runner.store.models import jobs, leases, runners
from runner.store.views import RunnerInfo, pid_alive, this_host

STALE_AFTER = timedelta(seconds=60)
"""A runner whose heartbeat is older than this is dead (`--stale-after`)."""


class DeclaredDead(Exception):
    """This runner's row is gone or its heartbeat lapsed: its jobs are (or may be) others'."""

    def __init__(self, runner_id: str, stale_after: timedelta) -> None:
        super().__init__(
            f"this runner ({runner_id}) was declared dead: its heartbeat lapsed for more than "
            f"{stale_after.total_seconds():g} s (--stale-after), as when the machine sleeps or "
            "the process is paused, and another runner may have taken its jobs over. It "
            "stopped claiming; run it again to rejoin"
        )


@dataclass
class Reaped:
    """What taking back the jobs of dead runners did."""

    runners: list[str] = field(default_factory=list)  # the dead runners removed
    recovered: int = 0  # calls cut short, back to the queue
    expired: int = 0  # their results whose URL expired: to be generated again
    adopted: list[Job] = field(default_factory=list)  # their results for this runner to fetch

    def counts(self) -> dict[str, int]:
        return {"recovered": self.recovered, "expired": self.expired}


async def db_clock(conn: AsyncConnection) -> datetime:
    """Now, by the database's clock on PostgreSQL (shared by every host), else this host's."""
    if conn.dialect.name == "postgresql":
        value = await conn.scalar(sa.select(sa.func.now()))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return utcnow()


async def register(
    store: StoreBase, runner_id: str, *, pid: int | None = None, host: str | None = None
) -> None:
    """Add this runner. A row under the same id is an earlier life of it (same host and
    process id, or the same --worker name): it is replaced, its jobs are no longer claimed by
    a living runner and the next `reap` takes them back."""
    async with store.transaction(immediate=True) as conn:
        now = await db_clock(conn)
        await conn.execute(sa.delete(leases).where(leases.c.runner_id == runner_id))
        await conn.execute(sa.delete(runners).where(runners.c.id == runner_id))
        await conn.execute(
            sa.insert(runners).values(
                id=runner_id,
                host=host or this_host(),
                pid=os.getpid() if pid is None else pid,
                started=now,
                heartbeat=now,
            )
        )
        # Claims under this id belong to the earlier life: free them for `reap`.
        await conn.execute(
            sa.update(jobs)
            .where(
                jobs.c.claimed_by == runner_id,
                state_is(JobState.SUBMITTING, JobState.GENERATED),
            )
            .values(claimed_by=None)
        )


async def renew(conn: AsyncConnection, runner_id: str, stale_after: timedelta) -> None:
    """This runner is alive: its heartbeat now. DeclaredDead when its row is gone, or when
    its heartbeat lapsed (others may be taking its jobs this very moment)."""
    now = await db_clock(conn)
    renewed = await conn.execute(
        sa.update(runners)
        .where(runners.c.id == runner_id, runners.c.heartbeat >= now - stale_after)
        .values(heartbeat=now)
    )
    if renewed.rowcount == 0:
        raise DeclaredDead(runner_id, stale_after)


async def unregister(store: StoreBase, runner_id: str) -> None:
    """A runner that ends cleanly leaves (its leases with it)."""
    async with store.transaction(immediate=True) as conn:
        await conn.execute(sa.delete(leases).where(leases.c.runner_id == runner_id))
        await conn.execute(sa.delete(runners).where(runners.c.id == runner_id))


async def reap(
    store: StoreBase,
    runner_id: str,
    stale_after: timedelta,
    *,
    batch: str | None = None,
    now: datetime | None = None,
) -> Reaped:
    """Renew this runner's heartbeat, remove the dead runners and take their jobs back.

    Jobs whose claim names no registered runner (a dead one's, or one from before runners
    were registered) are orphans: `submitting` ones go back to the queue (their call's
    answer was never seen), `generated` ones whose URL has expired are queued to be
    generated again, and the other `generated` ones (of `batch`, if given) pass to this
    runner, which downloads them. A live runner's jobs are never touched.
    """
    job_now = now or utcnow()
    reaped = Reaped()
    async with store.transaction(immediate=True) as conn:
        await renew(conn, runner_id, stale_after)
        beat = await db_clock(conn)
        here = this_host()
        for row in await conn.execute(
            sa.select(runners.c.id, runners.c.host, runners.c.pid, runners.c.heartbeat)
        ):
            lapsed = row.heartbeat < beat - stale_after
            gone = row.host == here and row.pid != os.getpid() and not pid_alive(row.pid)
            if row.id != runner_id and (lapsed or gone):
                reaped.runners.append(row.id)
        if reaped.runners:
            await conn.execute(sa.delete(leases).where(leases.c.runner_id.in_(reaped.runners)))
            await conn.execute(sa.delete(runners).where(runners.c.id.in_(reaped.runners)))
        orphan = sa.or_(
            jobs.c.claimed_by.is_(None), jobs.c.claimed_by.not_in(sa.select(runners.c.id))
        )
        recovered = await apply(conn, "recover", job_now, where=orphan, worker=runner_id)
        reaped.recovered = recovered.count
        orphan_result = sa.and_(state_is(JobState.GENERATED), orphan)
        expired = sa.and_(
            orphan_result,
            sa.or_(jobs.c.result_expires_at.is_(None), jobs.c.result_expires_at <= job_now),
        )
        reaped.expired = (
            await apply(conn, "expire", job_now, where=expired, worker=runner_id)
        ).count
        if reaped.recovered or reaped.expired:  # back in the queue: claims look from the oldest
            store.claim_floor.requeued(0)
        adopted = await apply(
            conn,
            "adopt",
            job_now,
            where=sa.and_(orphan_result, await store._scope(conn, batch)),
            values={"claimed_by": runner_id, "claimed_at": job_now},
            returning=JOB_COLUMNS,
        )
        reaped.adopted = [await store._job(conn, r) for r in adopted.rows]
    return reaped


async def list_runners(store: StoreBase, stale_after: timedelta = STALE_AFTER) -> list[RunnerInfo]:
    """Every registered runner, the oldest first, with its claimed jobs and leases."""
    claimed = (
        sa.select(sa.func.count())
        .where(
            jobs.c.claimed_by == runners.c.id,
            state_is(JobState.SUBMITTING, JobState.GENERATED),
        )
        .scalar_subquery()
    )
    held = sa.select(sa.func.count()).where(leases.c.runner_id == runners.c.id).scalar_subquery()
    async with store.transaction() as conn:
        now = await db_clock(conn)
        rows = await conn.execute(
            sa.select(runners, claimed.label("in_flight"), held.label("leases")).order_by(
                runners.c.started, runners.c.id
            )
        )
        here = this_host()
        return [
            RunnerInfo(
                id=r.id,
                host=r.host,
                pid=r.pid,
                started=r.started,
                heartbeat=r.heartbeat,
                stale=r.heartbeat < now - stale_after or (r.host == here and not pid_alive(r.pid)),
                in_flight=int(r.in_flight),
                leases=int(r.leases),
            )
            for r in rows
        ]
