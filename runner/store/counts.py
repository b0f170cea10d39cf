"""Counting the queue: jobs per batch and state (status, the progress line, the exit code)
and the events table's totals (the end-of-run summary).

Jobs per batch and state come from `job_counts`, which triggers keep in step with `jobs`
(revision 0007): a read sums a few rows, however many jobs the queue holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from runner.store.base import StoreBase
from runner.store.lifecycle import EventKind, JobState
from runner.store.models import batches, events, job_counts

FOLD_AFTER = 2000
"""PostgreSQL: fold `job_counts` into one row per batch and state once it holds this many
rows more than that (each statement that moves jobs appends its own)."""


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


class StoreCounts(StoreBase):
    """The store's counting queries; `Store` builds on it."""

    async def counts(self, batch: str | None = None) -> dict[str, dict[str, int]]:
        """{batch name: {state: jobs}} with every state present, batches in submission order."""
        async with self.transaction() as conn:
            query = sa.select(batches.c.id, batches.c.name).order_by(batches.c.id)
            per_state = sa.select(
                job_counts.c.batch_id,
                job_counts.c.state,
                sa.func.sum(job_counts.c.n),
                sa.func.count(),
            ).group_by(job_counts.c.batch_id, job_counts.c.state)
            if batch is not None:
                bid = await self.batch_id(conn, batch)
                query = query.where(batches.c.id == bid)
                per_state = per_state.where(job_counts.c.batch_id == bid)
            names = {r.id: r.name for r in await conn.execute(query)}
            result = {name: dict.fromkeys(JobState, 0) for name in names.values()}
            rows = 0
            for batch_id, state, n, parts in await conn.execute(per_state):
                rows += int(parts)
                if batch_id in names:
                    result[names[batch_id]][JobState(state)] = int(n)
        if self.dialect == "postgresql" and rows > FOLD_AFTER + len(JobState) * len(names):
            await self.fold_counts()
        return {name: {str(s): n for s, n in states.items()} for name, states in result.items()}

    async def fold_counts(self) -> None:
        """PostgreSQL: replace the rows of `job_counts` by their sums, one per batch and state.

        Safe beside writers and other folders: the DELETE takes only rows committed before it
        began (rows appended meanwhile stay for the next fold), and a row two folders both
        reach is deleted, and summed, by one of them.
        """
        async with self.transaction(immediate=True) as conn:
            await conn.execute(
                sa.text(
                    "WITH gone AS (DELETE FROM job_counts RETURNING batch_id, state, n) "
                    "INSERT INTO job_counts (batch_id, state, n) "
                    "SELECT batch_id, state, sum(n) FROM gone GROUP BY batch_id, state "
                    "HAVING sum(n) <> 0"
                )
            )

    async def state_totals(self, batch: str | None = None) -> dict[str, int]:
        """{state: jobs} over every batch (or only `batch`), with every state present."""
        totals = dict.fromkeys((str(s) for s in JobState), 0)
        for per_state in (await self.counts(batch)).values():
            for state, n in per_state.items():
                totals[state] += n
        return totals

    async def event_summary(self, since: datetime | None = None) -> EventSummary:
        """Totals of calls by code, paid calls, downloads, expiries; since `since` if given."""
        async with self.transaction() as conn:
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
                if kind == EventKind.CALL:
                    calls[code or "?"] = calls.get(code or "?", 0) + int(n)
                elif kind == EventKind.DOWNLOAD:
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
                expired=totals.get(EventKind.EXPIRED, 0),
                recovered=totals.get(EventKind.RECOVERED, 0),
                linked=totals.get(EventKind.LINKED, 0),
            )
