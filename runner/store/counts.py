"""Counting the queue: jobs per batch and state (status, the progress line, the exit code)
and the events table's totals (the end-of-run summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from runner.store.base import StoreBase
from runner.store.lifecycle import EventKind, JobState
from runner.store.models import batches, events, jobs


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
