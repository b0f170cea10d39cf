"""Counts of jobs per batch and state, for `changeclothes status`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.store.jobs import JobState
from runner.store.queue import Store

# The order states are shown in: the work still to do, then the outcome.
STATE_ORDER = (
    JobState.QUEUED,
    JobState.SUBMITTING,
    JobState.GENERATED,
    JobState.LINKED,
    JobState.DONE,
    JobState.FAILED,
)


@dataclass(frozen=True)
class BatchStatus:
    name: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def batch_status(store: Store, batch: str | None = None) -> list[BatchStatus]:
    """One BatchStatus per batch (or only `batch`), in submission order."""
    counts = await store.counts(batch)
    return [
        BatchStatus(name, {str(s): per_state.get(str(s), 0) for s in STATE_ORDER})
        for name, per_state in counts.items()
    ]


def status_json(statuses: list[BatchStatus]) -> dict[str, Any]:
    totals = {str(s): sum(b.counts[str(s)] for b in statuses) for s in STATE_ORDER}
    return {
        "batches": [{"batch": b.name, **b.counts, "total": b.total} for b in statuses],
        "total": {**totals, "total": sum(totals.values())},
    }


def status_table(statuses: list[BatchStatus]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (a TOTAL row when there are several batches), numbers as text."""
    header = ["batch", *(str(s) for s in STATE_ORDER), "total"]
    rows = [[b.name, *(str(b.counts[str(s)]) for s in STATE_ORDER), str(b.total)] for b in statuses]
    if len(statuses) > 1:
        data = status_json(statuses)["total"]
        rows.append(["TOTAL", *(str(data[str(s)]) for s in STATE_ORDER), str(data["total"])])
    return header, rows
