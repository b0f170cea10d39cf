"""The account's concurrency, shared by every runner, as lease rows in the database.

A runner holds a lease for each call it has in flight: it takes the lease and claims the
job in one transaction, and only while the leases of all runners together are fewer than
the account's number. Leases of a runner declared dead go with its row (`runners.reap`).

Why rows, not PostgreSQL advisory locks: an advisory lock lives as long as the session that
took it, and a paused runner (SIGSTOP, a machine asleep) keeps its session, so its slots
would never come back; a lease row belongs to a runner and is taken back with it, by the
same heartbeat rule as its jobs, and SQLite gets exactly the same rows. The count-then-
insert is made atomic by a row lock on the account's row (SELECT ... FOR UPDATE) on
PostgreSQL, and by BEGIN IMMEDIATE (one writer at a time) on SQLite.

When no concurrency is set for the account, no leases are taken: each runner is bound only
by its own --concurrency, as a lone runner is (and `status` counts its calls in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.store.base import StoreBase
from runner.store.jobs import Job
from runner.store.models import accounts, batches, jobs, leases
from runner.store.queue import claim_in, claim_some_in
from runner.store.runners import renew

ACCOUNT = "default"
"""One queue, one account: every runner of a queue calls with the same credentials."""


@dataclass(frozen=True)
class Account:
    concurrency: int | None  # set with `account set-concurrency`; None: not set
    effective: int | None  # lowered while the account is busy with calls not ours

    @property
    def limit(self) -> int | None:
        """How many calls all runners together may have in flight now."""
        if self.concurrency is None:
            return None
        return min(self.effective or self.concurrency, self.concurrency)


@dataclass(frozen=True)
class Claim:
    """What one try to start a call got: a job and its lease, or why not."""

    job: Job | None = None
    lease_id: int | None = None
    account: Account = Account(None, None)
    full: bool = False  # every lease of the account is held: wait for one
    more: tuple[Job, ...] = ()  # further jobs claimed with it (without leases: none needed)


@dataclass(frozen=True)
class LeaseInfo:
    id: int
    runner_id: str
    job: str | None  # batch/external id of the job it was taken for
    taken_at: datetime


async def _account(conn: AsyncConnection, *, lock: bool) -> Account:
    query = sa.select(accounts.c.concurrency, accounts.c.effective).where(
        accounts.c.name == ACCOUNT
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # lease takers queue here, one at a time
    row = (await conn.execute(query)).first()
    return Account(None, None) if row is None else Account(row.concurrency, row.effective)


async def claim_with_lease(
    store: StoreBase,
    runner_id: str,
    stale_after: timedelta,
    *,
    batch: str | None = None,
    now: datetime | None = None,
    up_to: int = 1,
) -> Claim:
    """Renew this runner's heartbeat (DeclaredDead: stop), then, if the account has a lease
    free, claim the oldest due job and take a lease for it, all in one transaction. Without
    a number set for the account, the job comes without a lease, and with up to `up_to` - 1
    more jobs claimed in the same statement."""
    now = now or utcnow()
    async with store.transaction(immediate=True) as conn:
        await renew(conn, runner_id, stale_after)
        account = await _account(conn, lock=True)
        limit = account.limit
        if limit is not None:
            held = int(await conn.scalar(sa.select(sa.func.count()).select_from(leases)) or 0)
            if held >= limit:
                return Claim(account=account, full=True)
        if limit is None:
            claimed = await claim_some_in(store, conn, now, runner_id, batch, max(1, up_to))
            return Claim(claimed[0] if claimed else None, None, account, more=tuple(claimed[1:]))
        job = await claim_in(store, conn, now, runner_id, batch)
        if job is None:
            return Claim(job, None, account)
        lease_id = await conn.scalar(
            sa.insert(leases)
            .values(runner_id=runner_id, job_id=job.id, taken_at=now)
            .returning(leases.c.id)
        )
        return Claim(job, int(lease_id), account)


async def release(store: StoreBase, lease_id: int) -> None:
    async with store.transaction(immediate=True) as conn:
        await conn.execute(sa.delete(leases).where(leases.c.id == lease_id))


async def set_concurrency(store: StoreBase, concurrency: int) -> None:
    """The account's concurrency, for every runner of this queue (and the adaptive number
    back to it)."""
    async with store.transaction(immediate=True) as conn:
        values = {"concurrency": concurrency, "effective": None, "successes": 0}
        updated = await conn.execute(
            sa.update(accounts)
            .where(accounts.c.name == ACCOUNT)
            .values(**values, updated_at=utcnow())
        )
        if updated.rowcount == 0:
            await conn.execute(
                sa.insert(accounts).values(name=ACCOUNT, **values, updated_at=utcnow())
            )


async def get_account(store: StoreBase) -> Account:
    async with store.transaction() as conn:
        return await _account(conn, lock=False)


async def shrink(store: StoreBase, seen: Account) -> int | None:
    """The account answered JobNumExceed although our runners kept within its number: someone
    else uses it. Halve the number for every runner; returns the new one, or None when it was
    not ours to change (not set, already 1, or another runner shrank it since `seen`)."""
    limit = seen.limit
    if limit is None or limit <= 1:
        return None
    new = max(1, limit // 2)
    current = sa.func.coalesce(accounts.c.effective, accounts.c.concurrency)
    async with store.transaction(immediate=True) as conn:
        changed = await conn.execute(
            sa.update(accounts)
            .where(accounts.c.name == ACCOUNT, current == limit)
            .values(effective=new, successes=0, updated_at=utcnow())
        )
    return new if changed.rowcount else None


async def grow(store: StoreBase, successes: int = 1) -> None:
    """Additive increase of a lowered number: one more after a full round of successes."""
    async with store.transaction(immediate=True) as conn:
        account = await _account(conn, lock=True)
        if account.effective is None or account.concurrency is None:
            return
        successes = (
            int(
                await conn.scalar(sa.select(accounts.c.successes).where(accounts.c.name == ACCOUNT))
                or 0
            )
            + successes
        )
        values: dict[str, int | None] = {"successes": successes}
        if successes >= account.effective:
            raised = account.effective + 1
            values = {
                "successes": 0,
                "effective": None if raised >= account.concurrency else raised,
            }
        await conn.execute(
            sa.update(accounts)
            .where(accounts.c.name == ACCOUNT)
            .values(**values, updated_at=utcnow())
        )


async def list_leases(store: StoreBase) -> list[LeaseInfo]:
    async with store.transaction() as conn:
        rows = await conn.execute(
            sa.select(
                leases.c.id,
                leases.c.runner_id,
                leases.c.taken_at,
                batches.c.name,
                jobs.c.external_id,
            )
            .select_from(
                leases.outerjoin(jobs, jobs.c.id == leases.c.job_id).outerjoin(
                    batches, batches.c.id == jobs.c.batch_id
                )
            )
            .order_by(leases.c.id)
        )
        return [
            LeaseInfo(
                r.id, r.runner_id, f"{r.name}/{r.external_id}" if r.name else None, r.taken_at
            )
            for r in rows
        ]
