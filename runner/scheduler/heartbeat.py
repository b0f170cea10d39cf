"""Keeping this runner alive in the queue's eyes, and taking over from runners that are not.

Every few seconds the runner renews its heartbeat and looks for dead runners (a heartbeat
older than --stale-after, or a process gone from this host): the paid results a dead runner
on this host journaled are stored first, then its calls cut short go back to the queue,
its results waiting for download become this runner's, and its temporary files go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import anyio

from runner.scheduler.faults import LOCAL_FAULTS
from runner.scheduler.files import remove_stale_temp_files
from runner.scheduler.resume import replay_orphaned_journals
from runner.scheduler.settings import RunSettings
from runner.store import DeclaredDead, Job, Store
from runner.store.runners import reap

log = logging.getLogger(__name__)

STOPS_THE_RUN: tuple[type[Exception], ...] = (DeclaredDead, *LOCAL_FAULTS)
"""This runner was declared dead, or its disk or database failed: it must stop claiming."""


def clock_with_pauses() -> float:
    """Seconds on a clock that goes on while the process is stopped or the machine sleeps
    (CLOCK_BOOTTIME on Linux; time.monotonic stands still through a suspend)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.time()


class Liveness:
    """When this runner last renewed its heartbeat (a claim or a beat). No runner takes over
    from it before its heartbeat is --stale-after old, so for half of that after a renewal
    the jobs it claimed are still its own without asking the database; after a longer gap (a
    paused process, a machine asleep: the clock runs through both) it asks."""

    def __init__(self, stale_after: timedelta) -> None:
        self._trust = stale_after.total_seconds() / 2
        self._renewed = -float("inf")

    @staticmethod
    def now() -> float:
        return clock_with_pauses()

    def renewed(self, started: float) -> None:
        """A renewal that began at `started` (taken before its transaction) succeeded."""
        self._renewed = max(self._renewed, started)

    def fresh(self) -> bool:
        return clock_with_pauses() - self._renewed < self._trust


def beat_interval(stale_after: timedelta) -> float:
    """Several beats within the stale bound, so one late beat never looks like a death."""
    return max(0.1, min(5.0, stale_after.total_seconds() / 6))


async def keep_alive(
    store: Store,
    settings: RunSettings,
    *,
    adopt: Callable[[Job], None],
    wake: Callable[[], None],
    stop: Callable[[BaseException], None],
    liveness: Liveness | None = None,
) -> None:
    """Beat until cancelled. Results taken over go to `adopt`; `wake` when jobs went back to
    the queue; `stop` with the reason when this runner is declared dead or the database
    fails."""
    while True:
        await anyio.sleep(beat_interval(settings.stale_after))
        try:
            await replay_orphaned_journals(store, settings.local_dir)
            started = Liveness.now()
            reaped = await reap(store, settings.worker, settings.stale_after, batch=settings.batch)
            if liveness is not None:
                liveness.renewed(started)
            if reaped.runners:
                for folder in settings.temp_folders:
                    await anyio.to_thread.run_sync(remove_stale_temp_files, folder)
        except STOPS_THE_RUN as exc:
            stop(exc)
            return
        if reaped.runners:
            log.warning(
                "Took over from %s (no heartbeat for %s, or its process is gone): %d calls cut "
                "short went back to the queue, %d results to download, %d to generate again.",
                ", ".join(reaped.runners),
                settings.stale_after,
                reaped.recovered,
                len(reaped.adopted),
                reaped.expired,
            )
        for job in reaped.adopted:
            adopt(job)
        if reaped.recovered or reaped.expired:
            wake()
