"""The one door to the queue's database: the engine, transactions, the dialect, the schema.

Every reader and writer, `submit` included, goes through `Store.transaction`. On SQLite a
write transaction starts with BEGIN IMMEDIATE (one writer at a time, waiting up to the busy
timeout) behind this process's own write lock; on PostgreSQL it is a plain transaction and
claims lock rows with FOR UPDATE SKIP LOCKED, so several hosts can share one queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import URL, RowMapping
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runner.store import database
from runner.store.claim_floor import ClaimFloor
from runner.store.errors import StoreConflict, StoreUnavailable, UnknownBatchError
from runner.store.jobs import Job
from runner.store.lifecycle import JobState
from runner.store.models import batches, jobs

JOB_COLUMNS = tuple(jobs.c)
"""Every column of `jobs`, in the order a `Job` is built from."""

CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
"""PostgreSQL's serialization failure and deadlock: the transaction was rolled back for
another's sake. asyncpg raises them as no OperationalError, so they are told by their code."""


def is_conflict(exc: BaseException) -> bool:
    """Was `exc` PostgreSQL rolling the transaction back for another's sake?"""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return isinstance(exc, DBAPIError) and code in CONFLICT_SQLSTATES


class StoreBase:
    """Connections, transactions and batch names; the queue's queries build on it."""

    runner: str | None = None
    """The runner this store acts for (set by the scheduler): then the transitions of `Store`
    move only jobs claimed by it, so a runner declared dead records nothing for jobs now
    others'; and its claims on PostgreSQL start at the claim floor (runner.store.claim_floor)."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self._batch_names: dict[int, str] = {}
        self._batch_ids: dict[str, int] = {}
        self._write_lock: anyio.Lock | None = None  # SQLite: this process's writers queue here
        self._wrote = False  # SQLite: a write transaction ran, so `close` runs PRAGMA optimize
        self.claim_floor = ClaimFloor(enabled=self.dialect == "postgresql")

    @property
    def url_for_display(self) -> str:
        """The database URL with any password masked, fit for logs and messages."""
        return database.display_url(self.url)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.url.get_backend_name()

    async def close(self) -> None:
        if self._wrote and self.dialect == "sqlite":
            await self._optimize()
        await self.engine.dispose()

    async def _optimize(self) -> None:
        """SQLite's advice for every connection that wrote: `PRAGMA optimize` before closing
        refreshes the planner's statistics where they went stale (bounded by analysis_limit,
        and skipped rather than waited for when another process holds the write lock)."""
        with contextlib.suppress(SQLAlchemyError), anyio.CancelScope(shield=True):
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA busy_timeout = 200")
                await conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
                await conn.exec_driver_sql("PRAGMA optimize")
                await conn.commit()
                await conn.invalidate()  # its busy timeout is not the pool's

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """One connection for several transactions (a temporary table lives as long as it)."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(
        self, *, immediate: bool = False, conn: AsyncConnection | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed on success; `immediate` for one that writes.

        On SQLite the writers of this process queue on a lock before BEGIN IMMEDIATE: SQLite
        lets one writer in at a time, and one waiting in its busy handler polls with sleeps of
        up to 100 ms, so pooled connections racing for the lock would mostly sleep. Other
        processes still wait in the busy handler, up to the busy timeout. `conn` runs the
        transaction on a connection from `connection()`.
        """
        try:
            # A write is never cut by cancellation: cut while its statement runs in the
            # driver's thread, it leaves SQLite's write lock to a connection nobody rolls
            # back, and the next write (a cancelled call's release) waits out the busy
            # timeout, once per call in flight: the run hung on its way out. Writes are short.
            with anyio.CancelScope(shield=immediate):
                async with self._transaction(immediate, conn) as active:
                    yield active
        except DBAPIError as exc:
            detail = str(exc.orig or exc).splitlines()[0]
            if is_conflict(exc):
                raise StoreConflict(
                    f"the queue database {self.url_for_display} gave up a write that "
                    f"conflicted with another runner's: {detail}"
                ) from exc
            if isinstance(exc, OperationalError):
                raise StoreUnavailable(
                    f"the queue database {self.url_for_display} cannot be used: {detail}"
                ) from exc
            raise

    @asynccontextmanager
    async def _transaction(
        self, immediate: bool, conn: AsyncConnection | None
    ) -> AsyncIterator[AsyncConnection]:
        async with AsyncExitStack() as stack:
            if immediate and self.dialect == "sqlite":
                self._wrote = True
                if self._write_lock is None:
                    self._write_lock = anyio.Lock()
                await stack.enter_async_context(self._write_lock)
            if conn is None:
                conn = await stack.enter_async_context(self.engine.connect())
            if self.dialect == "sqlite":
                await conn.execution_options(sqlite_immediate=immediate)
            await stack.enter_async_context(conn.begin())
            yield conn

    # -- the schema --------------------------------------------------------------------------

    async def revision(self) -> str | None:
        """The schema revision the database is at (None: an empty database)."""
        return await database.current(self.engine)

    async def upgrade(self) -> None:
        """Bring the schema to the newest revision this version ships."""
        await database.migrate(self.engine)

    # -- batches and jobs --------------------------------------------------------------------

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

    async def _batch_name(self, conn: AsyncConnection, batch_id: int) -> str:
        if batch_id not in self._batch_names:
            name = await conn.scalar(sa.select(batches.c.name).where(batches.c.id == batch_id))
            self._batch_names[batch_id] = str(name)
        return self._batch_names[batch_id]

    async def _job(self, conn: AsyncConnection, row: RowMapping | Mapping[str, Any]) -> Job:
        values = {c.name: row[c.name] for c in JOB_COLUMNS}
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
        async with self.transaction() as conn:
            row = (
                (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).mappings().first()
            )
            return None if row is None else await self._job(conn, row)
