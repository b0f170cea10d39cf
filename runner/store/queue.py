"""The scheduler's view of the queue: claim, record outcomes, recover. Each method is one
short transaction, and every state change in it is a transition of `lifecycle`.

Datetimes going in and coming out are aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.store.base import JOB_COLUMNS, StoreBase
from runner.store.counts import EventSummary, StoreCounts
from runner.store.database import create_engine, database_url, display_url, migrate
from runner.store.errors import JobStateError, StoreError
from runner.store.jobs import Job
from runner.store.lifecycle import (
    STRANDED_LEADERS,
    WORK_STATES,
    Event,
    EventKind,
    JobState,
    Moved,
    apply,
    settle_stranded,
    state_is,
)
from runner.store.models import events, jobs
from runner.store.writer import Write, Writer

_CHARGED = {True: jobs.c.attempts + 1, False: jobs.c.attempts}
"""A job's attempts after a call that counts (or does not): one object each, so that writes of
many jobs share one statement."""


class Store(StoreCounts):
    """The job queue in its database. Make one with `open_store`.

    async with await open_store("changeclothes.db") as store:
        job = await store.claim_next(now, worker="host-1")
    """

    # -- the scheduler's transitions ---------------------------------------------------------

    _writer: Writer | None = None

    async def claim_next(self, now: datetime, worker: str, batch: str | None = None) -> Job | None:
        """Take the oldest due `queued` job: it becomes `submitting`, claimed by `worker`.

        Never hands the same job to two claimers, across processes and hosts. With `batch`,
        only that batch's jobs and the jobs its linked jobs wait for.
        """
        async with self.transaction(immediate=True) as conn:
            return await claim_in(self, conn, now, worker, batch)

    async def mark_generated(
        self,
        job_id: int,
        result_url: str,
        expires_at: datetime,
        request_id: str | None,
        *,
        event: Event | None = None,
        now: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        """`submitting` → `generated`: the API returned a result URL, valid until `expires_at`.
        `owner`: the runner that claimed the job, when not this store's (a journal replay)."""
        await self._write(
            "generated",
            job_id,
            now,
            event,
            owner=owner,
            result_url=result_url,
            result_expires_at=expires_at,
            request_id=request_id,
        )

    async def mark_done(
        self,
        job_id: int,
        output_path: str,
        sha256: str,
        size: int,
        request_id: str | None = None,
        *,
        event: Event | None = None,
        now: datetime | None = None,
    ) -> None:
        """`generated` or `submitting` → `done`; jobs linked to it are done with it."""
        values: dict[str, Any] = {
            "output_path": output_path,
            "sha256": sha256,
            "bytes": size,
            "finished_at": now or utcnow(),
        }
        if request_id is not None:
            values["request_id"] = request_id
        await self._write("done", job_id, now, event, **values)

    async def mark_failed(
        self,
        job_id: int,
        code: str,
        message: str,
        *,
        charge_attempt: bool = False,
        event: Event | None = None,
        now: datetime | None = None,
    ) -> None:
        """→ `failed` with the error that ended it; jobs linked to it fail with it.

        `charge_attempt` counts the failing call itself (a transient error on the last try).
        """
        await self._write(
            "fail",
            job_id,
            now,
            event,
            last_error_code=code,
            last_error_message=message,
            finished_at=now or utcnow(),
            attempts=_CHARGED[charge_attempt],
        )

    async def requeue(
        self,
        job_id: int,
        *,
        not_before: datetime | None,
        charge_attempt: bool,
        code: str | None,
        message: str | None,
        event: Event | None = None,
        now: datetime | None = None,
    ) -> int:
        """Back to `queued`, not before `not_before`; returns the job's attempts afterwards.

        `charge_attempt` counts this try against max_attempts (transient errors do, throttling
        does not). Allowed from `submitting` and `generated` (a result that will not download).
        """
        written = await self._write(
            "requeue",
            job_id,
            now,
            event,
            not_before=not_before,
            attempts=_CHARGED[charge_attempt],
            last_error_code=code,
            last_error_message=message,
        )
        assert written.attempts is not None
        self.claim_floor.requeued(job_id)
        return written.attempts

    async def release(
        self, job_id: int, *, event: Event | None = None, now: datetime | None = None
    ) -> bool:
        """`submitting` → `queued`, uncharged and without a message (a halt or an interrupt).

        Returns False, changing nothing, when the job was not `submitting`.
        """
        now = now or utcnow()
        async with self.transaction(immediate=True) as conn:
            moved = await apply(conn, "release", now, where=jobs.c.id == job_id, owner=self.runner)
            self.claim_floor.requeued(job_id)
            if moved and event is not None:
                await conn.execute(sa.insert(events), [event.row(now)])
            return bool(moved)

    async def release_many(self, job_ids: list[int], *, now: datetime | None = None) -> int:
        """`release` for many jobs in one statement (jobs claimed ahead and never called);
        returns how many went back."""
        async with self.transaction(immediate=True) as conn:
            moved = await apply(
                conn, "release", now or utcnow(), where=jobs.c.id.in_(job_ids), owner=self.runner
            )
            if job_ids:
                self.claim_floor.requeued(min(job_ids))
            return moved.count

    async def expire_generated(self, job_id: int, *, now: datetime | None = None) -> None:
        """`generated` → `queued`: the result URL expired before the download; no charge."""
        await self._apply("expire", job_id, now, None)
        self.claim_floor.requeued(job_id)

    async def lose_result(
        self,
        job_id: int,
        *,
        max_regenerations: int,
        code: str,
        message: str,
        paid: Event | None = None,
        now: datetime | None = None,
    ) -> bool:
        """A job's paid result is gone (a `generated` job's URL, or an unusable answer of a
        `submitting` one, whose `paid` call is recorded with it): back to `queued` to be
        generated again (True), or, once it has been generated again `max_regenerations`
        times, `failed` with `code` and `message` (False). JobStateError when the job is in
        neither state any more."""
        now = now or utcnow()
        mine = sa.and_(
            jobs.c.id == job_id, jobs.c.state.in_([JobState.SUBMITTING, JobState.GENERATED])
        )
        if self.runner is not None:
            mine = sa.and_(mine, jobs.c.claimed_by == self.runner)
        async with self.transaction(immediate=True) as conn:
            if paid is not None:
                await conn.execute(sa.insert(events), [paid.row(now)])
            again = sa.and_(mine, jobs.c.regenerations < max_regenerations)
            if await apply(conn, "expire", now, where=again):
                self.claim_floor.requeued(job_id)
                return True
            event = Event(EventKind.EXPIRED, job_id, code=code)
            values = {"last_error_code": code, "last_error_message": message, "finished_at": now}
            if not await apply(conn, "fail", now, where=mine, values=values, event=event):
                state = await conn.scalar(sa.select(jobs.c.state).where(mine))
                raise JobStateError(job_id, "lose the result of", state)
            return False

    async def _apply(
        self,
        name: str,
        job_id: int,
        now: datetime | None,
        event: Event | None,
        *,
        owner: str | None = None,
        **values: Any,
    ) -> None:
        async with self.transaction(immediate=True) as conn:
            await apply(
                conn,
                name,
                now or utcnow(),
                ids=[job_id],
                event=event,
                values=values,
                owner=owner or self.runner,
            )

    @property
    def writer(self) -> Writer:
        """Batches the run's transitions while its task runs (`Writer.run`)."""
        if self._writer is None:
            self._writer = Writer(self)
        return self._writer

    async def _write(
        self,
        name: str,
        job_id: int,
        now: datetime | None,
        event: Event | None,
        *,
        owner: str | None = None,
        **values: Any,
    ) -> Write:
        """A one-job transition through the writer: batched with others while it runs, else
        in a transaction of its own. JobStateError when the job cannot move."""
        return await self.writer.write(
            Write(name, job_id, values, event, owner or self.runner, now)
        )

    async def set_output_path(
        self, job_id: int, output_path: str, *, now: datetime | None = None
    ) -> None:
        """Where a done job's file now is (a linked job gets a copy in its own batch)."""
        async with self.transaction(immediate=True) as conn:
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.DONE)
                .values(output_path=output_path, updated_at=now or utcnow())
            )

    async def record_event(self, event: Event, *, at: datetime | None = None) -> None:
        """Append one event that goes with no state change (a failed download). Its batch
        is the job's unless given."""
        if event.batch_id is not None:
            await self.writer.write(Write(None, event.job_id, event=event, now=at))
            return
        row: dict[str, Any] = event.row(at or utcnow())
        if event.job_id is not None:
            row["batch_id"] = (
                sa.select(jobs.c.batch_id).where(jobs.c.id == event.job_id).scalar_subquery()
            )
        async with self.transaction(immediate=True) as conn:
            await conn.execute(sa.insert(events).values(**row))

    # -- what the scheduler reads ------------------------------------------------------------

    async def next_not_before(
        self, batch: str | None = None, *, now: datetime | None = None
    ) -> datetime | None:
        """When the next backed-off `queued` job falls due (None when none is waiting)."""
        now = now or utcnow()
        async with self.transaction() as conn:
            result: datetime | None = await conn.scalar(
                sa.select(sa.func.min(jobs.c.not_before)).where(
                    jobs.c.state == JobState.QUEUED,
                    jobs.c.not_before > now,
                    await self._scope(conn, batch),
                )
            )
            # min() loses the column type on some backends; normalise to aware UTC.
            if isinstance(result, str):
                result = datetime.fromisoformat(result)
            if result is not None and result.tzinfo is None:
                result = result.replace(tzinfo=UTC)
            return result

    async def owns(self, job_id: int) -> bool:
        """Is the job still claimed by this store's runner (always, without a runner)?"""
        if self.runner is None:
            return True
        async with self.transaction() as conn:
            claimed_by = await conn.scalar(sa.select(jobs.c.claimed_by).where(jobs.c.id == job_id))
            return bool(claimed_by == self.runner)

    async def settle_stranded(self, *, now: datetime | None = None) -> int:
        """Linked jobs left waiting for a leader that is already done or failed take its
        outcome now (returns how many leaders had such followers). The scheduler asks when
        it has nothing to claim and nothing in flight: a run then ends instead of waiting on
        them forever. A read finds none in the usual case, so no write is taken for nothing."""
        probe = sa.select(sa.exists(STRANDED_LEADERS))
        async with self.transaction() as conn:
            if not await conn.scalar(probe):
                return 0
        async with self.transaction(immediate=True) as conn:
            return await settle_stranded(conn, now or utcnow())

    async def has_work(self, batch: str | None = None) -> bool:
        """Is any job (of `batch`) not finished yet (queued, in flight or linked)?"""
        async with self.transaction() as conn:
            where: sa.ColumnElement[bool] = jobs.c.state.in_(sorted(WORK_STATES))
            if batch is not None:
                where = sa.and_(where, jobs.c.batch_id == await self.batch_id(conn, batch))
            return bool(await conn.scalar(sa.select(sa.exists().where(where))))

    async def generated_jobs(self, batch: str | None = None) -> list[Job]:
        """Jobs whose result waits for download (this store's runner's, when it has one), the
        earliest expiry first."""
        mine = sa.true() if self.runner is None else jobs.c.claimed_by == self.runner
        return await self._jobs_where(
            JobState.GENERATED, batch, mine, order=(jobs.c.result_expires_at, jobs.c.id)
        )

    async def linked_results(self, batch: str | None = None) -> list[Job]:
        """Done jobs whose result came from an identical job (no call of their own)."""
        return await self._jobs_where(
            JobState.DONE, batch, jobs.c.linked_job_id.is_not(None), order=(jobs.c.id,)
        )

    async def _jobs_where(
        self,
        state: JobState,
        batch: str | None,
        *where: sa.ColumnElement[bool],
        order: tuple[Any, ...],
    ) -> list[Job]:
        async with self.transaction() as conn:
            query = (
                sa.select(jobs)
                .where(jobs.c.state == state, await self._scope(conn, batch), *where)
                .order_by(*order)
            )
            rows = (await conn.execute(query)).mappings().all()
            return [await self._job(conn, r) for r in rows]


async def claim_in(
    store: StoreBase, conn: AsyncConnection, now: datetime, worker: str, batch: str | None
) -> Job | None:
    """`claim_next` inside the caller's write transaction (which may take a lease with it)."""
    claimed = await claim_some_in(store, conn, now, worker, batch, 1)
    return claimed[0] if claimed else None


async def claim_some_in(
    store: StoreBase,
    conn: AsyncConnection,
    now: datetime,
    worker: str,
    batch: str | None,
    limit: int,
) -> list[Job]:
    """The `limit` oldest due `queued` jobs, claimed in one statement, the oldest first.

    The pick reads the partial index ix_jobs_claimable, which holds only queued jobs; on
    PostgreSQL it skips rows other claimers hold (FOR UPDATE SKIP LOCKED) and starts at the
    store's claim floor (runner.store.claim_floor), so that it does not step over the dead
    entries finished jobs leave in that index until the next VACUUM.
    """
    floor = store.claim_floor.lowest() if store.runner is not None else 0  # a run's claims
    claimed = await _claim_from(store, conn, now, worker, batch, floor, limit)
    if not claimed and floor:  # nothing due above the floor: look from the oldest
        floor = 0
        claimed = await _claim_from(store, conn, now, worker, batch, floor, limit)
    if not claimed:
        return []
    rows = sorted(claimed.rows, key=lambda r: r["id"])
    # Claimed in id order from the floor: no due job is left below the newest one taken.
    store.claim_floor.claimed(int(rows[-1]["id"]), floor)
    return [await store._job(conn, r) for r in rows]


async def _claim_from(
    store: StoreBase,
    conn: AsyncConnection,
    now: datetime,
    worker: str,
    batch: str | None,
    floor: int,
    limit: int,
) -> Moved:
    pick = (
        sa.select(jobs.c.id)
        .where(
            state_is(JobState.QUEUED),  # a literal: matches ix_jobs_claimable on any plan
            sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
            await store._scope(conn, batch),
        )
        .order_by(jobs.c.id)
        .limit(limit)
    )
    if floor:  # see runner.store.claim_floor
        pick = pick.where(jobs.c.id >= floor)
    if store.dialect == "sqlite":  # whatever its statistics say (see database.create_engine)
        pick = pick.with_hint(jobs, "INDEXED BY ix_jobs_claimable", "sqlite")
    else:
        pick = pick.with_for_update(skip_locked=True)
    return await apply(
        conn,
        "claim",
        now,
        where=jobs.c.id == pick.scalar_subquery() if limit == 1 else jobs.c.id.in_(pick),
        values={"claimed_by": worker, "claimed_at": now},
        returning=JOB_COLUMNS,
    )


async def open_store(db: str, *, migrate_schema: bool = True) -> Store:
    """Open the queue at `db` (a file path or a SQLAlchemy URL) and bring its schema to head.

    A SQLite file and its parent folder are created when missing. Close the store with
    `await store.close()`, or use `async with await open_store(db) as store:`.
    """
    url = database_url(db)
    engine = create_engine(url)
    try:
        if migrate_schema:
            await migrate(engine)
        else:
            async with engine.connect():
                pass
    except (OSError, SQLAlchemyError) as exc:
        await engine.dispose()
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreError(f"cannot open the queue database {display_url(url)}: {detail}") from exc
    except BaseException:
        await engine.dispose()
        raise
    return Store(engine, url)


__all__ = ["EventSummary", "Store", "claim_in", "claim_some_in", "open_store"]
