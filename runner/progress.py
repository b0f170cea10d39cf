"""Showing a run while it goes: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from runner.scheduler.run import RunStats
from runner.store import FINAL_STATES, WORK_STATES, JobState

Q, S, G, L, D, F = (
    JobState.QUEUED,
    JobState.SUBMITTING,
    JobState.GENERATED,
    JobState.LINKED,
    JobState.DONE,
    JobState.FAILED,
)

CountsFn = Callable[[], Awaitable[dict[str, int]]]


def _line(stats: RunStats, counts: dict[str, int]) -> str:
    minutes = max(stats.wall_time / 60, 1e-9)
    return (
        f"done {counts.get(D, 0)}, failed {counts.get(F, 0)}, "
        f"queued {counts.get(Q, 0) + counts.get(S, 0)}, "
        f"downloading {counts.get(G, 0)}, "
        f"{stats.calls / minutes:.1f} calls/min"
    )


async def show_progress(
    stats: RunStats, counts: CountsFn, console: Console, interval: float | None = None
) -> None:
    """Runs until cancelled. `counts` gives jobs per state for the run's scope."""
    if not console.is_terminal:
        # Logs and cron mail: one plain line now and then instead of a redrawn bar.
        interval = interval or 30.0
        while True:
            await anyio.sleep(interval)
            stamp = time.strftime("%H:%M:%S")
            console.print(f"{stamp} {_line(stats, await counts())}", highlight=False)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[line]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("jobs", total=None, line="")
        while True:
            current = await counts()
            # Jobs given up on by a user (cancelled) are outside the run's scope.
            finished = sum(current.get(s, 0) for s in FINAL_STATES)
            total = finished + sum(current.get(s, 0) for s in WORK_STATES)
            progress.update(task, total=total, completed=finished, line=_line(stats, current))
            await anyio.sleep(interval or 0.5)


def format_summary(stats: RunStats, counts: dict[str, int]) -> list[str]:
    lines = [
        f"Done: {counts.get(D, 0)} jobs ({stats.done} in this run)",
        f"Failed: {counts.get(F, 0)} jobs"
        + (
            " (" + ", ".join(f"{c} ×{n}" for c, n in stats.failed_by_code.most_common()) + ")"
            if stats.failed_by_code
            else ""
        ),
        f"Left in the queue: {sum(counts.get(s, 0) for s in (Q, S, L))}"
        f", awaiting download: {counts.get(G, 0)}",
        f"Paid calls: {stats.paid_calls}; re-generations after expired URLs: "
        f"{stats.regenerations}; throttled answers: {stats.throttled}",
        f"Wall time: {time.strftime('%H:%M:%S', time.gmtime(stats.wall_time))}",
    ]
    recovered = stats.recovered.get("recovered", 0) + stats.recovered.get("expired", 0)
    if recovered:
        lines.insert(
            0,
            f"Resumed after an interruption: {stats.recovered.get('recovered', 0)} calls cut "
            f"short went back to the queue, {stats.recovered.get('expired', 0)} expired "
            "results to be generated again.",
        )
    if stats.errors_by_code:
        lines.append(
            "Errors seen: " + ", ".join(f"{c} ×{n}" for c, n in stats.errors_by_code.most_common())
        )
    return lines
