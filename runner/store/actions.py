"""What a user does to chosen jobs the morning after: `retry` failed jobs (and, through the
same `move_selected`, any other user action of `lifecycle.TRANSITIONS`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.store.lifecycle import (
    IN_FLIGHT_STATES,
    TRANSITIONS,
    EventKind,
    JobState,
    apply,
    record_events,
)
from runner.store.models import jobs
from runner.store.queue import Store


@dataclass(frozen=True)
class JobSelection:
    """Jobs chosen by batch, by last error code (`FAMILY*` for a prefix) and by manifest id;
    an empty field does not narrow the choice."""

    batch: str | None = None
    codes: Sequence[str] = ()
    ids: Sequence[str] = ()

    async def where(self, store: Store, conn: AsyncConnection) -> sa.ColumnElement[bool]:
        terms = [code_filter(jobs.c.last_error_code, self.codes)]
        if self.batch is not None:
            terms.append(jobs.c.batch_id == await store.batch_id(conn, self.batch))
        if self.ids:
            terms.append(jobs.c.external_id.in_(list(self.ids)))
        return sa.and_(*terms)


def code_filter(column: sa.ColumnElement[Any], codes: Sequence[str]) -> sa.ColumnElement[bool]:
    """`CODE` matches exactly; `FAMILY*` matches every code starting with `FAMILY`."""
    if not codes:
        return sa.true()
    exact = [c for c in codes if not c.endswith("*")]
    prefixes = [c.rstrip("*") for c in codes if c.endswith("*")]
    terms: list[sa.ColumnElement[bool]] = []
    if exact:
        terms.append(column.in_(exact))
    for prefix in prefixes:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms.append(column.like(escaped + "%", escape="\\"))
    return sa.or_(*terms)


@dataclass(frozen=True)
class Moved:
    """What a user action did (or, with `dry_run`, would do), counted before the move."""

    by_state: dict[str, int] = field(default_factory=dict)  # jobs moved, by their old state
    by_code: dict[str, int] = field(default_factory=dict)  # ... by their last error code
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


async def move_selected(
    store: Store,
    transition: str,
    selection: JobSelection,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Moved:
    """Apply `transition` to every selected job in one of its source states, in one write
    transaction (a read with `dry_run`). Raises UnknownBatchError for an unknown batch."""
    sources = sorted(TRANSITIONS[transition].sources)
    async with store.transaction(immediate=not dry_run) as conn:
        chosen = sa.and_(jobs.c.state.in_(sources), await selection.where(store, conn))
        moved = await _count(conn, chosen, dry_run)
        if not dry_run and moved.total:
            await apply(conn, transition, now or utcnow(), where=chosen)
    return moved


async def _count(conn: AsyncConnection, chosen: sa.ColumnElement[bool], dry_run: bool) -> Moved:
    by_state: dict[str, int] = {}
    by_code: dict[str, int] = {}
    query = (
        sa.select(jobs.c.state, jobs.c.last_error_code, sa.func.count())
        .where(chosen)
        .group_by(jobs.c.state, jobs.c.last_error_code)
    )
    for state, code, n in await conn.execute(query):
        by_state[state] = by_state.get(state, 0) + int(n)
        by_code[code or "?"] = by_code.get(code or "?", 0) + int(n)
    by_code = dict(sorted(by_code.items(), key=lambda item: (-item[1], item[0])))
    return Moved(by_state, by_code, dry_run)


@dataclass(frozen=True)
class RetryResult:
    """What `retry_failed` did (or, with `dry_run`, would do)."""

    by_code: dict[str, int]  # failed jobs moved back, by their last error code
    waiting: int = 0  # ... of which wait for an identical job instead of calling (`linked`)
    reused: int = 0  # ... of which were done at once from an identical job's result
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.by_code.values())

    @property
    def queued(self) -> int:
        return self.total - self.waiting - self.reused


async def retry_failed(
    store: Store,
    batch: str | None = None,
    codes: Sequence[str] = (),
    *,
    ids: Sequence[str] = (),
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetryResult:
    """Move failed jobs (of `batch`; with `codes`, only those whose last error code matches)
    back to `queued`, with attempts reset to 0 and no `not_before`, in one transaction.

    The last error code and message stay on the job until its next outcome. Each job moved
    gets one `retry` event (its old code and attempt count). A job that was failed with the
    identical job it was linked to does not pay for a second call: it waits for that job
    (`linked`) when that one is queued again or still in flight, and is done at once from its
    result when that one is done. Raises UnknownBatchError for an unknown batch name.
    """
    now = now or utcnow()
    selection = JobSelection(batch, codes, ids)
    async with store.transaction(immediate=not dry_run) as conn:
        chosen = sa.and_(jobs.c.state == JobState.FAILED, await selection.where(store, conn))
        counted = await _count(conn, chosen, dry_run)

        # A job failed together with the identical job it was linked to (its "leader").
        leader = jobs.alias("leader")
        leader_chosen = sa.and_(
            leader.c.state == JobState.FAILED,
            leader.c.linked_job_id.is_(None),
            code_filter(leader.c.last_error_code, codes),
        )
        if batch is not None:
            leader_chosen = sa.and_(
                leader_chosen, leader.c.batch_id == await store.batch_id(conn, batch)
            )
        leader_done = sa.exists().where(
            leader.c.id == jobs.c.linked_job_id, leader.c.state == JobState.DONE
        )
        leader_coming = sa.exists().where(
            leader.c.id == jobs.c.linked_job_id,
            sa.or_(leader.c.state.in_(sorted(IN_FLIGHT_STATES)), leader_chosen),
        )
        reuse = sa.and_(chosen, jobs.c.linked_job_id.is_not(None), leader_done)
        wait = sa.and_(chosen, jobs.c.linked_job_id.is_not(None), leader_coming)
        if dry_run:
            reused = await conn.scalar(sa.select(sa.func.count()).where(reuse))
            waiting = await conn.scalar(sa.select(sa.func.count()).where(wait))
            return RetryResult(counted.by_code, int(waiting or 0), int(reused or 0), dry_run=True)
        if not counted.total:
            return RetryResult({})

        def from_leader(column: sa.Column[Any]) -> sa.ScalarSelect[Any]:
            return sa.select(column).where(leader.c.id == jobs.c.linked_job_id).scalar_subquery()

        old_code = jobs.c.last_error_code
        # A reused job is retried and finished at once: both events.
        await record_events(conn, EventKind.RETRY, reuse, now, old_code, None)
        reused_moved = await apply(
            conn,
            "retry_reuse",
            now,
            where=reuse,
            code="OK",
            values={
                "output_path": from_leader(leader.c.output_path),
                "sha256": from_leader(leader.c.sha256),
                "bytes": from_leader(leader.c.bytes),
                "request_id": from_leader(leader.c.request_id),
                "finished_at": now,
            },
        )
        waiting_moved = await apply(conn, "retry_linked", now, where=wait, code=old_code)
        await apply(conn, "retry", now, where=chosen, code=old_code)
    return RetryResult(counted.by_code, waiting_moved.count, reused_moved.count)
