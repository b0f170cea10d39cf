"""One writer for the run's hot transitions: the outcomes of many jobs (results recorded,
downloads done, failures, requeues, events) that arrive during one event-loop turn are
written in one transaction, one UPDATE per kind of transition and one INSERT of all their
events, instead of one transaction each.

A caller hands its transition to the writer and waits until it is committed, so it learns
what it learns today (done, or JobStateError for a job settled elsewhere) only once the
change is durable: a paid result is on record before its slot is freed, as before. A batch
is not undone by one job that cannot move; that job's caller alone gets JobStateError.

Without a running writer (outside `run`, or after it ended) each transition is written at
once in its own transaction, as before.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.store.base import StoreBase
from runner.store.errors import JobStateError, StoreConflict
from runner.store.lifecycle import Event, apply
from runner.store.models import events, jobs


@dataclass(eq=False)
class Write:
    """One job's transition (`name`, with its `values`) and the event that explains it, or
    (`name` None) an event alone."""

    name: str | None
    job_id: int | None
    values: Mapping[str, Any] = field(default_factory=dict)
    event: Event | None = None
    owner: str | None = None
    now: datetime | None = None  # given: written alone, at that time
    # Filled in once the write is committed (or has failed):
    attempts: int | None = None  # the job's attempts after the move
    error: BaseException | None = None
    _done: anyio.Event = field(default_factory=anyio.Event)


class Writer:
    """Collects writes and commits them in batches from one task (`run`)."""

    def __init__(self, store: StoreBase) -> None:
        self._store = store
        self._pending: list[Write] = []
        self._wake = anyio.Event()
        self.running = False

    async def write(self, write: Write) -> Write:
        """Commit `write` (with whatever else is waiting); raises what its transition
        raised. Waiting is not cut by cancellation: the write is committed either way."""
        if not self.running or write.now is not None:
            await self._commit([write])
        else:
            self._pending.append(write)
            self._wake.set()
            with anyio.CancelScope(shield=True):
                await write._done.wait()
        if write.error is not None:
            raise write.error
        return write

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Commit batches until cancelled; what is waiting then is still committed."""
        self.running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await self._commit_pending()
        finally:
            self.running = False
            with anyio.CancelScope(shield=True):
                await self._commit_pending()

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await self._commit(batch)

    async def _commit(self, batch: list[Write]) -> None:
        """One transaction for `batch`; run again from scratch (a few times, after a short
        random pause) when PostgreSQL rolled it back for another transaction's sake (a
        deadlock with another runner's writes): one lost race must not fail every write of
        the batch. Shielded: a caller learns the outcome only once it is settled."""
        with anyio.CancelScope(shield=True):
            try:
                for attempt in range(CONFLICT_RETRIES + 1):
                    for write in batch:  # what a rolled-back try found out does not hold
                        write.error, write.attempts = None, None
                    try:
                        async with self._store.transaction(immediate=True) as conn:
                            await _write_all(conn, batch)
                        return
                    except StoreConflict as exc:
                        if attempt == CONFLICT_RETRIES:
                            _fail_all(batch, exc)
                            return
                        await anyio.sleep(random.uniform(0.5, 1.5) * 0.02 * 2**attempt)
            except Exception as exc:  # every write of the batch fails with it (a broken database)
                _fail_all(batch, exc)
            finally:
                for write in batch:
                    write._done.set()


CONFLICT_RETRIES = 3
"""How often a batch rolled back by a deadlock or serialization failure is run again."""


def _fail_all(batch: list[Write], exc: BaseException) -> None:
    for write in batch:
        if write.error is None:
            write.error = exc


async def _write_all(conn: AsyncConnection, batch: list[Write]) -> None:
    now = batch[0].now or utcnow()
    groups: dict[tuple[str, str | None, tuple[Any, ...]], list[Write]] = defaultdict(list)
    alone: list[Write] = []
    for write in batch:
        if write.name is None:
            alone.append(write)
        else:
            groups[(write.name, write.owner, _shape(write.values))].append(write)
    stuck: list[Write] = []
    for (name, owner, _), writes in groups.items():
        moved = await apply(
            conn,
            name,
            now,
            per_job={w.job_id: w.values for w in writes if w.job_id is not None},
            event={w.job_id: w.event for w in writes if w.event and w.job_id is not None},
            owner=owner,
            strict=False,
        )
        attempts = {r["id"]: r.get("attempts") for r in moved.rows}
        for write in writes:
            if write.job_id not in attempts:
                stuck.append(write)
            elif (after := attempts[write.job_id]) is not None:
                write.attempts = int(after)
    if rows := [w.event.row(now) for w in alone if w.event]:
        await conn.execute(sa.insert(events), rows)
    if stuck:
        states = dict(
            (
                await conn.execute(
                    sa.select(jobs.c.id, jobs.c.state).where(
                        jobs.c.id.in_([w.job_id for w in stuck])
                    )
                )
            ).all()
        )
        for write in stuck:
            assert write.job_id is not None and write.name is not None
            write.error = JobStateError(write.job_id, write.name, states.get(write.job_id))


def _shape(values: Mapping[str, Any]) -> tuple[Any, ...]:
    """Writes of one shape go in one statement: the same columns, and the same SQL expression
    objects where a value is computed by the database."""
    return tuple(
        sorted((c, id(v) if isinstance(v, sa.ClauseElement) else None) for c, v in values.items())
    )
