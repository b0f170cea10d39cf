"""Picking up after a crash, before a run claims anything: leftover temporary files go,
paid results a killed run journaled are stored, this runner registers, and the calls cut
short of runners that are gone go back to the queue (a live runner's are left alone)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import anyio

from runner.scheduler.files import remove_stale_temp_files
from runner.scheduler.journal import orphaned_entries
from runner.scheduler.settings import RunSettings
from runner.store import Event, JobStateError, Store
from runner.store.runners import reap, register

log = logging.getLogger(__name__)


async def resume_after_crash(store: Store, settings: RunSettings) -> dict[str, int]:
    """What was put right: {"recovered": calls cut short, "expired": results to make again,
    "replayed": journaled results stored}."""
    # Another runner may be writing into the same folder: only files of dead writers go.
    removed = 0
    for folder in settings.temp_folders:
        removed += await anyio.to_thread.run_sync(remove_stale_temp_files, folder)
    if removed:
        log.info("Removed %d temporary files left by an interrupted run.", removed)
    replayed = await replay_orphaned_journals(store, settings.local_dir)
    await register(store, settings.worker)
    reaped = await reap(store, settings.worker, settings.stale_after, batch=settings.batch)
    return {**reaped.counts(), "replayed": replayed}


async def replay_orphaned_journals(store: Store, out_dir: Path) -> int:
    """Paid results a killed run had journaled but not yet stored."""
    replayed = 0
    for path, entries in orphaned_entries(out_dir):
        for entry in entries:
            try:
                await store.mark_generated(
                    entry["job_id"],
                    entry["result_url"],
                    datetime.fromisoformat(entry["expires_at"]),
                    entry["request_id"],
                    event=Event(**entry["event"]),
                    owner=entry["event"].get("worker"),  # only if its runner still holds it
                )
                replayed += 1
            except JobStateError:
                pass  # stored before the kill, or the job has moved on since
        path.unlink(missing_ok=True)
    if replayed:
        log.info("Kept %d paid results a killed run had not stored yet.", replayed)
    return replayed
