"""What the queue will cost before it is run: paid calls needed, time at a concurrency (from
the median API time of past calls in this database, or a stated default), and money."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import sqlalchemy as sa

from runner.store.lifecycle import EventKind, JobState
from runner.store.models import events, jobs
from runner.store.queue import Store

DEFAULT_CALL_SECONDS = 20.0
"""Assumed API time of one generation when this database has seen no successful call."""
SAMPLE_CALLS = 1000  # the latest successful calls the median is taken over

# Jobs that still need a call of their own: linked jobs follow an identical one (no call),
# generated ones were paid for already.
NEEDS_CALL = (JobState.QUEUED, JobState.SUBMITTING)


@dataclass(frozen=True)
class Estimate:
    paid_calls: int
    call_seconds: float
    sampled_calls: int  # past calls the median came from; 0: the default was assumed

    def seconds(self, concurrency: int) -> float:
        return math.ceil(self.paid_calls / max(concurrency, 1)) * self.call_seconds

    def lines(self, concurrency: int, price: float | None, scope: str) -> list[str]:
        basis = (
            f"median API time {self.call_seconds:.1f} s over the last {self.sampled_calls} "
            "paid calls in this database"
            if self.sampled_calls
            else f"assuming {self.call_seconds:.0f} s a call: no paid call in this database yet"
        )
        lines = [
            f"Estimate {scope}: {self.paid_calls} paid call{'s' if self.paid_calls != 1 else ''}"
            f" needed (identical rows counted once); about {_duration(self.seconds(concurrency))}"
            f" at concurrency {concurrency} ({basis})."
        ]
        if price is not None:
            lines.append(
                f"Cost: {self.paid_calls} x {price:g} = {self.paid_calls * price:,.2f} "
                "(at --price per call)."
            )
        return lines


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


async def estimate(store: Store, batch: str | None = None) -> Estimate:
    """The estimate for `batch` (or the whole queue). Raises UnknownBatchError."""
    async with store.transaction() as conn:
        where: sa.ColumnElement[bool] = jobs.c.state.in_([s.value for s in NEEDS_CALL])
        if batch is not None:
            where = sa.and_(where, jobs.c.batch_id == await store.batch_id(conn, batch))
        needed = int(await conn.scalar(sa.select(sa.func.count()).where(where)) or 0)
        latencies = list(
            await conn.scalars(
                sa.select(events.c.latency_ms)
                .where(
                    events.c.kind == EventKind.CALL,
                    events.c.code == "OK",
                    events.c.latency_ms.is_not(None),
                )
                .order_by(events.c.id.desc())
                .limit(SAMPLE_CALLS)
            )
        )
    if not latencies:
        return Estimate(needed, DEFAULT_CALL_SECONDS, 0)
    return Estimate(needed, statistics.median(latencies) / 1000, len(latencies))
