"""Showing a run while it goes: one live status line on a terminal, plain lines otherwise.

On a terminal the line is redrawn in place and log records are printed above it (through the
same rich console), so a warning never lands inside the bar. The line fits the terminal: as it
narrows, parts are dropped in a fixed order (`DROP_ORDER`), never cut mid-word. Off a terminal
(cron mail, a log file) it prints one plain line every 30 seconds, never wrapped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from runner.scheduler.run import RunStats
from runner.store import FINAL_STATES, WORK_STATES, JobState

CountsFn = Callable[[], Awaitable[dict[str, int]]]

BAR_WIDTH = 20
DROP_ORDER = ("rate", "downloading", "queued", "failed", "bar")
"""Parts of the status line left out first when the terminal is too narrow for all of them;
the count (done of total), the time left and done are always shown."""


def _scope(counts: dict[str, int]) -> tuple[int, int]:
    """(finished, total) of the run's scope: cancelled jobs are outside it."""
    finished = sum(counts.get(s, 0) for s in FINAL_STATES)
    return finished, finished + sum(counts.get(s, 0) for s in WORK_STATES)


def time_left(stats: RunStats, counts: dict[str, int]) -> str:
    finished, total = _scope(counts)
    settled = stats.done + stats.failed
    if total == finished:
        return "0:00:00"
    if settled == 0:
        return "?"
    seconds = stats.wall_time / settled * (total - finished)
    return time.strftime("%H:%M:%S", time.gmtime(min(seconds, 99 * 3600)))


def status_parts(stats: RunStats, counts: dict[str, int]) -> dict[str, str]:
    """The parts of the status line, in display order."""
    finished, total = _scope(counts)
    filled = BAR_WIDTH * finished // total if total else BAR_WIDTH
    minutes = max(stats.wall_time / 60, 1e-9)
    queued = sum(counts.get(s, 0) for s in (JobState.QUEUED, JobState.SUBMITTING, JobState.LINKED))
    return {
        "count": f"jobs {finished}/{total}",
        "bar": "━" * filled + "╌" * (BAR_WIDTH - filled),
        "done": f"done {counts.get(JobState.DONE, 0)}",
        "failed": f"failed {counts.get(JobState.FAILED, 0)}",
        "queued": f"queued {queued}",
        "downloading": f"downloading {counts.get(JobState.GENERATED, 0)}",
        "rate": f"{stats.answers / minutes:.1f} answers/min",
        "left": f"left {time_left(stats, counts)}",
    }


def status_line(stats: RunStats, counts: dict[str, int], width: int | None = None) -> str:
    """The status line, with parts dropped in `DROP_ORDER` until it fits `width`."""
    parts = status_parts(stats, counts)
    for name in (None, *DROP_ORDER):
        if name is not None:
            del parts[name]
        line = "  ".join(parts.values())
        if width is None or len(line) <= width:
            return line
    return line


async def show_progress(
    stats: RunStats, counts: CountsFn, console: Console, interval: float | None = None
) -> None:
    """Runs until cancelled; on cancellation a terminal's last frame shows the final counts."""
    if not console.is_terminal:
        interval = interval or 30.0
        while True:
            await anyio.sleep(interval)
            stamp = time.strftime("%H:%M:%S")
            console.print(
                f"{stamp} {status_line(stats, await counts())}", highlight=False, soft_wrap=True
            )
    with Live(Text(""), console=console, auto_refresh=False, transient=False) as live:
        try:
            while True:
                live.update(Text(status_line(stats, await counts(), console.width)), refresh=True)
                await anyio.sleep(interval or 0.5)
        finally:
            with anyio.CancelScope(shield=True):
                final = status_line(stats, await counts(), console.width)
                live.update(Text(final), refresh=True)
