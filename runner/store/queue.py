"""Every query the queue runs, as methods of `Store`. One place owns the queue's SQL.

Each method is one short transaction. Datetimes going in and coming out are aware UTC.
On SQLite, write transactions start with BEGIN IMMEDIATE (one writer at a time, waiting up
to the busy timeout); on PostgreSQL, claiming uses SELECT ... FOR UPDATE SKIP LOCKED so
several processes on several hosts can share one queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import URL, RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runner.clock import utcnow
from runner.store.database import create_engine, database_url, display_url, migrate
from runner.store.errors import JobStateError, StoreError, UnknownBatchError
from runner.store.jobs import IN_FLIGHT_STATES, WORK_STATES, Job, JobState
from runner.store.models import batches, events, jobs

DEFAULT_STALE_AFTER = timedelta(minutes=15)

_JOB_COLUMNS = tuple(jobs.c)



@dataclass(frozen=True)
class Event:
    """One row for the append-only events table. Passed to a state change, it is written in
    the same transaction, so the record of a paid call and its effect never part."""

    kind: str
    job_id: int | None = None
    batch_id: int | None = None
    request_id: str | None = None
    code: str | None = None
    error_class: str | None = None
    latency_ms: int | None = None
    size: int | None = None
    attempt: int | None = None
    worker: str | None = None


@dataclass(frozen=True)
class EventSummary:
    """Totals of the events table, for the end-of-run summary and the report."""

    calls_by_code: dict[str, int] = field(default_factory=dict)  # API calls, by reply code
    paid_calls: int = 0  # successful API calls: each one is billed
    downloads: int = 0  # result images fetched
    download_failures: int = 0
    download_bytes: int = 0
    expired: int = 0  # result URLs that expired before their download
    recovered: int = 0  # in-flight jobs put back after a crash
    linked: int = 0  # jobs finished from an identical job's result, without a call

    @property
    def calls(self) -> int:
        return sum(self.calls_by_code.values())


class Store:
    """The job queue in its database. Make one with `open_store`.

        store = await open_store("changeclothes.db")
        try:
            job = await store.claim_next(now, worker="host-1")
        finally:
            await store.close()

    or `async with await open_store(db) as store: ...`, which closes it on the way out.
    """

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self._batch_names: dict[int, str] = {}
        self._batch_ids: dict[str, int] = {}
        self._write_lock: anyio.Lock | None = None  # SQLite: this process's writers queue here

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url_for_display(self) -> str:
        """The database URL with any password masked, fit for logs and messages."""
        return display_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: BEGIN IMMEDIATE on SQLite; committed on success.

        On SQLite the writers of this process also queue on a lock first: SQLite lets one
        writer in at a time, and one waiting in its busy handler polls with sleeps of up to
        100 ms, so pooled connections racing for the lock would mostly sleep. Other
        processes still wait in the busy handler, up to the busy timeout.
        """
        if not self.is_sqlite:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        if self._write_lock is None:
            self._write_lock = anyio.Lock()
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _transition(
        self, event: Event | None, now: datetime
    ) -> AsyncIterator[AsyncConnection]:
        """A write transaction for one state change, with the event that explains it."""
        async with self.write() as conn:
            if event is not None:
                await self._insert_event(conn, event, now)
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (never takes SQLite's write lock)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- batches -----------------------------------------------------------------------------

    async def batch_id(self, conn: AsyncConnection, name: str) -> int:
        """The id of the batch called `name`, or UnknownBatchError."""
        if name in self._batch_ids:
            return self._batch_ids[name]
        found = await conn.scalar(sa.select(batches.c.id).where(batches.c.name == name))
        if found is None:
            known = (await conn.scalars(sa.select(batches.c.name).order_by(batches.c.id))).all()
            raise UnknownBatchError(name, list(known))
        self._batch_ids[name] = found
        self._batch_names[found] = name
        return found

    async def batch_names(self) -> list[str]:
        async with self.read() as conn:
            return list(
                (await conn.scalars(sa.select(batches.c.name).order_by(batches.c.id))).all()
            )

    async def _batch_name(self, conn: AsyncConnection, batch_id: int) -> str:
        if batch_id not in self._batch_names:
            name = await conn.scalar(sa.select(batches.c.name).where(batches.c.id == batch_id))
            self._batch_names[batch_id] = str(name)
        return self._batch_names[batch_id]

    async def _job(self, conn: AsyncConnection, row: RowMapping | Mapping[str, Any]) -> Job:
        values = {c.name: row[c.name] for c in _JOB_COLUMNS}
        values["state"] = JobState(values["state"])
        values["options"] = dict(values["options"] or {})
        return Job(batch_name=await self._batch_name(conn, values["batch_id"]), **values)

    async def _scope(self, conn: AsyncConnection, batch: str | None) -> sa.ColumnElement[bool]:
        """Jobs to work on for `batch`: its own, and the ones its linked jobs wait for."""
        if batch is None:
            return sa.true()
        bid = await self.batch_id(conn, batch)
        waited_for = sa.select(jobs.c.linked_job_id).where(
            jobs.c.batch_id == bid, jobs.c.state == JobState.LINKED
        )
        return sa.or_(jobs.c.batch_id == bid, jobs.c.id.in_(waited_for))

    async def get_job(self, job_id: int) -> Job | None:
        async with self.read() as conn:
            row = (
                (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).mappings().first()
            )
            return None if row is None else await self._job(conn, row)

    async def _state_error(self, conn: AsyncConnection, job_id: int, action: str) -> JobStateError:
        state = await conn.scalar(sa.select(jobs.c.state).where(jobs.c.id == job_id))
        return JobStateError(job_id, action, state)

    # -- the scheduler's transitions --------------------------------------------------------

    async def recover_after_crash(
        self,
        now: datetime,
        *,
        worker: str | None = None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> dict[str, int]:
        """Undo what a crash left half-done; returns {"recovered": n, "expired": m}.

        `submitting` jobs go back to `queued` (their result was never seen; no attempt is
        charged). On SQLite every such job is taken back: one file, one runner. On PostgreSQL,
        where other hosts may be mid-call, only jobs claimed by `worker` or claimed longer
        than `stale_after` ago. `generated` jobs whose result URL expired by `now` are queued
        again to be regenerated.
        """
        async with self.write() as conn:
            stuck = jobs.c.state == JobState.SUBMITTING
            if not self.is_sqlite:
                mine = jobs.c.claimed_by == worker if worker is not None else sa.false()
                stuck = sa.and_(
                    stuck,
                    sa.or_(
                        mine, jobs.c.claimed_at.is_(None), jobs.c.claimed_at < now - stale_after
                    ),
                )
            recovered = await self._requeue_where(conn, stuck, now, "recovered", worker)
            expired_where = sa.and_(
                jobs.c.state == JobState.GENERATED,
                sa.or_(jobs.c.result_expires_at.is_(None), jobs.c.result_expires_at <= now),
            )
            expired = await self._requeue_where(conn, expired_where, now, "expired", worker)
        return {"recovered": recovered, "expired": expired}

    async def _requeue_where(
        self,
        conn: AsyncConnection,
        where: sa.ColumnElement[bool],
        now: datetime,
        kind: str,
        worker: str | None,
    ) -> int:
        query = sa.select(jobs.c.id).where(where)
        if not self.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        ids = list((await conn.scalars(query)).all())
        if not ids:
            return 0
        rows = (
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id.in_(ids))
                .values(
                    state=JobState.QUEUED,
                    claimed_by=None,
                    claimed_at=None,
                    result_url=None,
                    result_expires_at=None,
                    updated_at=now,
                )
                .returning(jobs.c.id, jobs.c.batch_id, jobs.c.attempts)
            )
        ).all()
        await conn.execute(
            sa.insert(events),
            [
                {
                    "kind": kind,
                    "at": now,
                    "job_id": r.id,
                    "batch_id": r.batch_id,
                    "attempt": r.attempts,
                    "worker": worker,
                }
                for r in rows
            ],
        )
        return len(rows)

    async def claim_next(self, now: datetime, worker: str, batch: str | None = None) -> Job | None:
        """Take the oldest due `queued` job: it becomes `submitting`, claimed by `worker`.

        Never hands the same job to two claimers, across processes and hosts. With `batch`,
        only that batch's jobs and the jobs its linked jobs wait for.
        """
        async with self.write() as conn:
            pick = (
                sa.select(jobs.c.id)
                .where(
                    jobs.c.state == JobState.QUEUED,
                    sa.or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
                    await self._scope(conn, batch),
                )
                .order_by(jobs.c.id)
                .limit(1)
            )
            if not self.is_sqlite:
                pick = pick.with_for_update(skip_locked=True)
            row = (
                (
                    await conn.execute(
                        sa.update(jobs)
                        .where(jobs.c.id == pick.scalar_subquery(), jobs.c.state == JobState.QUEUED)
                        .values(
                            state=JobState.SUBMITTING,
                            claimed_by=worker,
                            claimed_at=now,
                            updated_at=now,
                        )
                        .returning(*_JOB_COLUMNS)
                    )
                )
                .mappings()
                .first()
            )
            return None if row is None else await self._job(conn, row)

    async def next_not_before(
        self, batch: str | None = None, *, now: datetime | None = None
    ) -> datetime | None:
        """When the next backed-off `queued` job falls due (None when none is waiting)."""
        now = now or utcnow()
        async with self.read() as conn:
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

    async def has_work(self, batch: str | None = None) -> bool:
        """Is any job (of `batch`) queued, submitting, generated or linked?"""
        async with self.read() as conn:
            where: sa.ColumnElement[bool] = jobs.c.state.in_(WORK_STATES)
            if batch is not None:
                where = sa.and_(where, jobs.c.batch_id == await self.batch_id(conn, batch))
            return bool(await conn.scalar(sa.select(sa.exists().where(where))))

    async def mark_generated(
        self,
        job_id: int,
        result_url: str,
        expires_at: datetime,
        request_id: str | None,
        *,
        event: Event | None = None,
        now: datetime | None = None,
    ) -> None:
        """`submitting` → `generated`: the API returned a result URL, valid until `expires_at`."""
        now = now or utcnow()
        async with self._transition(event, now) as conn:
            done = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.SUBMITTING)
                .values(
                    state=JobState.GENERATED,
                    result_url=result_url,
                    result_expires_at=expires_at,
                    request_id=request_id,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                raise await self._state_error(conn, job_id, "mark generated")

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
        now = now or utcnow()
        values: dict[str, Any] = {
            "state": JobState.DONE,
            "output_path": output_path,
            "sha256": sha256,
            "bytes": size,
            "finished_at": now,
            "updated_at": now,
            "last_error_code": None,
            "last_error_message": None,
        }
        async with self._transition(event, now) as conn:
            stmt = (
                sa.update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.state.in_([JobState.GENERATED, JobState.SUBMITTING])
                )
                .values(**values)
            )
            if request_id is not None:
                stmt = stmt.values(request_id=request_id)
            if (await conn.execute(stmt)).rowcount != 1:
                raise await self._state_error(conn, job_id, "mark done")
            await self._settle_linked(conn, job_id, values, now)

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
        now = now or utcnow()
        values: dict[str, Any] = {
            "state": JobState.FAILED,
            "last_error_code": code,
            "last_error_message": message,
            "finished_at": now,
            "updated_at": now,
        }
        async with self._transition(event, now) as conn:
            result = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(IN_FLIGHT_STATES))
                .values(
                    **values,
                    claimed_by=None,
                    attempts=jobs.c.attempts + (1 if charge_attempt else 0),
                )
            )
            if result.rowcount != 1:
                raise await self._state_error(conn, job_id, "mark failed")
            await self._settle_linked(conn, job_id, values, now)

    async def _settle_linked(
        self, conn: AsyncConnection, job_id: int, values: dict[str, Any], now: datetime
    ) -> None:
        rows = (
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.linked_job_id == job_id, jobs.c.state == JobState.LINKED)
                .values(**values)
                .returning(jobs.c.id, jobs.c.batch_id)
            )
        ).all()
        if rows:
            code = values.get("last_error_code") or "OK"
            await conn.execute(
                sa.insert(events),
                [
                    {
                        "kind": "linked",
                        "at": now,
                        "job_id": r.id,
                        "batch_id": r.batch_id,
                        "code": code,
                    }
                    for r in rows
                ],
            )

    async def linked_results(self, batch: str | None = None) -> list[Job]:
        """Done jobs whose result came from an identical job (no call of their own)."""
        async with self.read() as conn:
            scope = await self._scope(conn, batch)
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(scope, jobs.c.state == JobState.DONE, jobs.c.linked_job_id.is_not(None))
                    .order_by(jobs.c.id)
                )
            ).mappings()
            return [await self._job(conn, row) for row in rows]

    async def set_output_path(
        self, job_id: int, output_path: str, *, now: datetime | None = None
    ) -> None:
        """Where a done job's file now is (a linked job gets a copy in its own batch)."""
        async with self.write() as conn:
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.DONE)
                .values(output_path=output_path, updated_at=now or utcnow())
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
        now = now or utcnow()
        async with self._transition(event, now) as conn:
            attempts = await conn.scalar(
                sa.update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.state.in_([JobState.SUBMITTING, JobState.GENERATED])
                )
                .values(
                    state=JobState.QUEUED,
                    not_before=not_before,
                    attempts=jobs.c.attempts + (1 if charge_attempt else 0),
                    last_error_code=code,
                    last_error_message=message,
                    claimed_by=None,
                    claimed_at=None,
                    result_url=None,
                    result_expires_at=None,
                    updated_at=now,
                )
                .returning(jobs.c.attempts)
            )
            if attempts is None:
                raise await self._state_error(conn, job_id, "requeue")
            return int(attempts)

    async def release(
        self, job_id: int, *, event: Event | None = None, now: datetime | None = None
    ) -> bool:
        """`submitting` → `queued`, uncharged and without a message (a halt or an interrupt).

        Returns False, changing nothing, when the job was not `submitting`.
        """
        now = now or utcnow()
        async with self._transition(event, now) as conn:
            result = await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.SUBMITTING)
                .values(state=JobState.QUEUED, claimed_by=None, claimed_at=None, updated_at=now)
            )
            return result.rowcount == 1

    async def expire_generated(self, job_id: int, *, now: datetime | None = None) -> None:
        """`generated` → `queued`: the result URL expired before the download; no charge."""
        now = now or utcnow()
        async with self.write() as conn:
            row = (
                await conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state == JobState.GENERATED)
                    .values(
                        state=JobState.QUEUED,
                        result_url=None,
                        result_expires_at=None,
                        claimed_by=None,
                        claimed_at=None,
                        updated_at=now,
                    )
                    .returning(jobs.c.batch_id, jobs.c.attempts)
                )
            ).first()
            if row is None:
                raise await self._state_error(conn, job_id, "expire")
            await conn.execute(
                sa.insert(events).values(
                    kind="expired",
                    at=now,
                    job_id=job_id,
                    batch_id=row.batch_id,
                    attempt=row.attempts,
                )
            )

    async def generated_jobs(self, batch: str | None = None) -> list[Job]:
        """Jobs whose result waits for download, the earliest expiry first."""
        async with self.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(jobs)
                        .where(jobs.c.state == JobState.GENERATED, await self._scope(conn, batch))
                        .order_by(jobs.c.result_expires_at, jobs.c.id)
                    )
                )
                .mappings()
                .all()
            )
            return [await self._job(conn, r) for r in rows]

    async def record_event(
        self,
        kind: str,
        *,
        job_id: int | None = None,
        batch_id: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        error_class: str | None = None,
        latency_ms: int | None = None,
        size: int | None = None,
        attempt: int | None = None,
        worker: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Append one event: kind 'call' (one API call; code 'OK' or the error code),
        'download', 'expired', 'recovered', 'linked', ... `batch_id` defaults to the job's."""
        event = Event(
            kind, job_id, batch_id, request_id, code, error_class, latency_ms, size, attempt, worker
        )
        async with self.write() as conn:
            await self._insert_event(conn, event, at or utcnow())

    async def _insert_event(self, conn: AsyncConnection, event: Event, at: datetime) -> None:
        batch: Any = event.batch_id
        if batch is None and event.job_id is not None:
            batch = sa.select(jobs.c.batch_id).where(jobs.c.id == event.job_id).scalar_subquery()
        await conn.execute(
            sa.insert(events).values(
                kind=event.kind,
                at=at,
                job_id=event.job_id,
                batch_id=batch,
                request_id=event.request_id,
                code=event.code,
                error_class=event.error_class,
                latency_ms=event.latency_ms,
                bytes=event.size,
                attempt=event.attempt,
                worker=event.worker,
            )
        )

    # -- reading for status and reports ------------------------------------------------------

    async def counts(self, batch: str | None = None) -> dict[str, dict[str, int]]:
        """{batch name: {state: jobs}} with every state present, batches in submission order."""
        async with self.read() as conn:
            query = sa.select(batches.c.id, batches.c.name).order_by(batches.c.id)
            per_state = sa.select(jobs.c.batch_id, jobs.c.state, sa.func.count()).group_by(
                jobs.c.batch_id, jobs.c.state
            )
            if batch is not None:
                bid = await self.batch_id(conn, batch)
                query = query.where(batches.c.id == bid)
                per_state = per_state.where(jobs.c.batch_id == bid)
            names = {r.id: r.name for r in await conn.execute(query)}
            result = {name: dict.fromkeys(JobState, 0) for name in names.values()}
            for batch_id, state, n in await conn.execute(per_state):
                result[names[batch_id]][JobState(state)] = int(n)
            return {name: {str(s): n for s, n in states.items()} for name, states in result.items()}

    async def state_totals(self, batch: str | None = None) -> dict[str, int]:
        """{state: jobs} over every batch (or only `batch`), with every state present."""
        totals = dict.fromkeys((str(s) for s in JobState), 0)
        for per_state in (await self.counts(batch)).values():
            for state, n in per_state.items():
                totals[state] += n
        return totals

    async def event_summary(self, since: datetime | None = None) -> EventSummary:
        """Totals of calls by code, paid calls, downloads, expiries; since `since` if given."""
        async with self.read() as conn:
            query = sa.select(
                events.c.kind,
                events.c.code,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(events.c.bytes), 0),
            ).group_by(events.c.kind, events.c.code)
            if since is not None:
                query = query.where(events.c.at >= since)
            calls: dict[str, int] = {}
            totals: dict[str, int] = {}
            downloads = download_failures = download_bytes = 0
            for kind, code, n, size in await conn.execute(query):
                if kind == "call":
                    calls[code or "?"] = calls.get(code or "?", 0) + int(n)
                elif kind == "download":
                    if code in (None, "OK"):
                        downloads += int(n)
                        download_bytes += int(size)
                    else:
                        download_failures += int(n)
                else:
                    totals[kind] = totals.get(kind, 0) + int(n)
            return EventSummary(
                calls_by_code=calls,
                paid_calls=calls.get("OK", 0),
                downloads=downloads,
                download_failures=download_failures,
                download_bytes=download_bytes,
                expired=totals.get("expired", 0),
                recovered=totals.get("recovered", 0),
                linked=totals.get("linked", 0),
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
