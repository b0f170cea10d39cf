"""Putting a manifest into the queue: batches, dedupe, idempotence, chunked inserts.

Two passes, so that a bad row or a crash never leaves half a manifest queued:

1. read and check every row, staging the valid ones in a temporary table of this
   connection (nothing the scheduler sees; memory stays flat whatever the file's size);
2. if the manifest may be queued, move the staged rows into `jobs` in chunks, all in one
   write transaction, linking each row to an identical finished or in-flight job when one
   exists, and record the submission.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.clock import utcnow
from runner.manifest import ManifestFormatError, Problem, check_id, detect_format, file_sha256
from runner.store.bulk import indexes_built_after
from runner.store.database import PG_MIGRATION_LOCK
from runner.store.lifecycle import IN_FLIGHT_STATES, EventKind, JobState
from runner.store.models import UTCDateTime, batches, events, jobs, submissions
from runner.store.queue import Store
from runner.store.resubmit import record_invalid_rows, replace_changed
from runner.store.staging import (
    JOB_FIELDS,
    Progress,
    Staged,
    classify,
    count_lines,
    index_keys,
    line_ranges,
    stage_manifest,
    staging,
)

CHUNK_ROWS = 50_000
"""Staged rows moved into `jobs` per statement (progress is reported per chunk)."""
SQLITE_SUBMIT_CACHE_KIB = 16 * 1024
"""SQLite page cache while submitting (KiB): bounds memory, keeps large inserts fast."""
PG_SUBMIT_LOCK = PG_MIGRATION_LOCK + 1


@dataclass(frozen=True)
class SubmitResult:
    """What a submit did. `new` jobs were added; `problems` lists the first invalid rows."""

    batch: str
    rows: int = 0  # valid rows in the manifest
    queued: int = 0  # new jobs that will call the API
    linked_done: int = 0  # new jobs finished at once from an identical finished job
    linked_waiting: int = 0  # new jobs that wait for an identical job already queued
    already_present: int = 0  # ids already in the batch: left as they are
    changed_present: int = 0  # ... of which the manifest now says something else
    duplicates_merged: int = 0  # identical rows without an id, counted once
    invalid: int = 0  # rows with problems
    problems: list[Problem] = field(default_factory=list)
    replaced: int = 0  # ... of which were updated and queued again (--replace)
    unchanged: bool = False  # this exact manifest was already submitted to this batch
    skipped_invalid: bool = False  # --skip-invalid: the valid rows were queued anyway
    new_batch: bool = False

    @property
    def new(self) -> int:
        return self.queued + self.linked_done + self.linked_waiting

    @property
    def refused(self) -> bool:
        """True when invalid rows stopped the whole manifest (nothing was queued)."""
        return self.invalid > 0 and not self.skipped_invalid


def batch_name_for(path: str | Path, batch: str | None) -> str:
    """The batch's name: `batch` if given, else the manifest's file name without extension."""
    name = batch if batch is not None else Path(path).stem
    try:
        return check_id(name)
    except ValueError as exc:
        raise ManifestFormatError(f"batch name: {exc}".replace("id ", "", 1)) from None


async def submit_manifest(
    store: Store,
    path: str | Path,
    *,
    batch: str | None = None,
    fmt: str | None = None,
    base_url: str | None = None,
    skip_invalid: bool = False,
    force: bool = False,
    replace: bool = False,
    refused: Mapping[int, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> SubmitResult:
    """Queue every row of the manifest at `path` into the batch `batch` (default: file stem).

    Any invalid row and nothing is queued: the result lists the problems (the first 50 and a
    count). With `skip_invalid` the valid rows are queued and the rest listed. Submitting the
    same content to the same batch again adds nothing; a changed manifest adds only the ids
    the batch does not have yet. A row identical to a finished job in any batch is done at
    once (no paid call) and one identical to a job in flight waits for it, unless `force`.

    With `replace`, ids already in the batch whose row changed are updated and queued again
    when they are not done (all of them with `force`). Lines in `refused` (the image
    preflight's verdicts) count as invalid rows. Invalid rows skipped are recorded in
    `invalid_rows` with their reasons.

    Raises ManifestFormatError (unknown format, bad --base-url or batch name), OSError
    (cannot read the file); file-level faults such as unknown columns come back as problems.
    """
    path = Path(await anyio.Path(path).absolute())
    name = batch_name_for(path, batch)
    detect_format(path, fmt)
    sha = await anyio.to_thread.run_sync(file_sha256, path)
    options = {
        "format": fmt,
        "base_url": base_url,
        "skip_invalid": skip_invalid,
        "force": force,
        "replace": replace,
    }

    async with store.transaction() as conn:
        if await _same_content_submitted(conn, name, sha):
            return SubmitResult(batch=name, unchanged=True)

    sqlite = store.dialect == "sqlite"
    async with store.connection() as conn:  # one connection: the staging table lives in it
        try:
            async with store.transaction(conn=conn):
                await conn.run_sync(lambda c: staging.drop(c, checkfirst=True))
                await conn.run_sync(lambda c: staging.create(c))
                staged = await stage_manifest(
                    conn, path, fmt, base_url, chunk_rows, progress, sqlite=sqlite, refused=refused
                )
            if staged.problem_count and not skip_invalid:
                return SubmitResult(
                    batch=name,
                    rows=staged.rows,
                    duplicates_merged=staged.duplicates_merged,
                    invalid=staged.problem_count,
                    problems=staged.problems,
                )
            if staged.sha256 != sha:
                raise ManifestFormatError(
                    f"{path} changed while it was being read; submit it again"
                )
            async with store.transaction(immediate=True, conn=conn):
                return await _queue_staged(
                    conn,
                    store,
                    staged,
                    name=name,
                    path=path,
                    sha=sha,
                    options=options,
                    force=force,
                    replace=replace,
                    chunk_rows=chunk_rows,
                    progress=progress,
                )
        finally:
            with contextlib.suppress(SQLAlchemyError):  # never hide the error that got us here
                if conn.in_transaction():
                    await conn.rollback()
                async with store.transaction(conn=conn):
                    await conn.run_sync(lambda c: staging.drop(c, checkfirst=True))
                    if sqlite:
                        await conn.exec_driver_sql("PRAGMA cache_size = -2000")


async def _same_content_submitted(conn: AsyncConnection, name: str, sha: str) -> bool:
    query = (
        sa.select(submissions.c.id)
        .join(batches, batches.c.id == submissions.c.batch_id)
        .where(batches.c.name == name, submissions.c.content_sha256 == sha)
        .limit(1)
    )
    return (await conn.scalar(query)) is not None


async def _any_job_in(conn: AsyncConnection, states: list[str]) -> bool:
    """Whether any job of any batch is in one of `states` (answered from an index)."""
    query = sa.select(jobs.c.id).where(jobs.c.state.in_(states)).limit(1)
    return (await conn.scalar(query)) is not None


async def _queue_staged(
    conn: AsyncConnection,
    store: Store,
    staged: Staged,
    *,
    name: str,
    path: Path,
    sha: str,
    options: dict[str, Any],
    force: bool,
    replace: bool,
    chunk_rows: int,
    progress: Progress | None,
) -> SubmitResult:
    """Pass 2, in the caller's write transaction: staged rows → jobs, set-based in SQL.

    Each staged row is first resolved against the jobs table (already in the batch? an
    identical job done or in flight?); then the rows that do work or reuse an earlier job are
    inserted, then the later copies of a row of this manifest, linked to its first copy.
    """
    now = utcnow()
    if store.dialect == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_SUBMIT_LOCK})
    if await _same_content_submitted(conn, name, sha):  # a concurrent submit got here first
        return SubmitResult(batch=name, unchanged=True)
    batch_id = await conn.scalar(sa.select(batches.c.id).where(batches.c.name == name))
    new_batch = batch_id is None
    if batch_id is None:
        batch_id = await conn.scalar(
            sa.insert(batches)
            .values(
                name=name,
                source_path=str(path),
                content_sha256=sha,
                submitted_at=now,
                options=options,
            )
            .returning(batches.c.id)
        )
    s = staging
    if not new_batch:
        present = (
            sa.select(jobs.c.id)
            .where(jobs.c.batch_id == batch_id, jobs.c.external_id == s.c.external_id)
            .scalar_subquery()
        )
        present_key = (
            sa.select(jobs.c.dedupe_key)
            .where(jobs.c.batch_id == batch_id, jobs.c.external_id == s.c.external_id)
            .scalar_subquery()
        )
        await conn.execute(sa.update(s).values(present_id=present, present_key=present_key))
    if not force:  # --force: no earlier job is reused (rows of this manifest still share)
        values: dict[str, Any] = {}
        if await _any_job_in(conn, [JobState.DONE.value]):
            values["done_id"] = (
                sa.select(sa.func.min(jobs.c.id))
                .where(jobs.c.dedupe_key == s.c.dedupe_key, jobs.c.state == JobState.DONE.value)
                .scalar_subquery()
            )
        if await _any_job_in(conn, sorted(IN_FLIGHT_STATES)):
            values["waiting_id"] = (
                sa.select(sa.func.min(jobs.c.id))
                .where(
                    jobs.c.dedupe_key == s.c.dedupe_key,
                    jobs.c.state.in_(sorted(IN_FLIGHT_STATES)),
                )
                .scalar_subquery()
            )
        if values:
            await conn.execute(sa.update(s).where(s.c.present_id.is_(None)).values(**values))
    await index_keys(conn)
    if store.dialect == "sqlite":  # a large batch's indexes outgrow the default 2 MB cache
        await conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_SUBMIT_CACHE_KIB}")
    # Rows of this manifest with the same content: the first new one is queued, the later
    # ones wait for it. Only rows whose key prefix repeats are looked at (usually none).
    first = s.alias("first")
    leader = (
        sa.select(sa.func.min(first.c.line))
        .where(
            first.c.key_prefix == s.c.key_prefix,
            first.c.dedupe_key == s.c.dedupe_key,
            first.c.present_id.is_(None),
        )
        .scalar_subquery()
    )
    repeated = (
        sa.select(first.c.key_prefix).group_by(first.c.key_prefix).having(sa.func.count() > 1)
    )
    await conn.execute(
        sa.update(s)
        .where(
            s.c.present_id.is_(None),
            s.c.done_id.is_(None),
            s.c.waiting_id.is_(None),
            s.c.key_prefix.in_(repeated),
        )
        .values(leader_line=leader)
    )

    counts = await classify(conn)
    replaced = await replace_changed(conn, batch_id, now, force=force) if replace else 0
    total = staged.rows
    copied = 0
    new_rows = counts["queued"] + counts["linked_done"] + counts["linked_waiting"]
    async with indexes_built_after(conn, new_rows=new_rows, sqlite=store.dialect == "sqlite"):
        # Rows that call the API, or reuse a job that existed before this submit.
        async for lo, hi in line_ranges(conn, chunk_rows):
            await conn.execute(_insert_first_copies(batch_id, now, lo, hi))
            copied += await count_lines(conn, lo, hi)
            if progress:
                progress("queuing", copied, total)
        # Later copies of a row of this manifest wait for the first copy's job.
        await conn.execute(_insert_later_copies(batch_id, now))
    # One 'linked' event per job finished from an earlier result: no call was paid for it.
    now_value = sa.literal(now, UTCDateTime())
    is_new, is_done = s.c.present_id.is_(None), s.c.done_id.is_not(None)
    await conn.execute(
        sa.insert(events).from_select(
            ["kind", "at", "job_id", "batch_id", "code"],
            sa.select(
                sa.literal(EventKind.LINKED.value),
                now_value,
                jobs.c.id,
                sa.literal(batch_id),
                sa.literal("OK"),
            )
            .select_from(s.join(jobs, jobs.c.external_id == s.c.external_id))
            .where(jobs.c.batch_id == batch_id, is_new, is_done),
        )
    )
    if progress:
        progress("queuing", total, total)

    await conn.execute(
        sa.insert(submissions).values(
            batch_id=batch_id,
            source_path=str(path),
            content_sha256=sha,
            submitted_at=now,
            options=options,
            row_count=staged.rows,
            queued=counts["queued"],
            linked=counts["linked_done"] + counts["linked_waiting"],
            already_present=counts["already_present"],
            skipped_invalid=staged.problem_count,
        )
    )
    await record_invalid_rows(conn, batch_id, staged.recorded, now)
    return SubmitResult(
        batch=name,
        rows=staged.rows,
        duplicates_merged=staged.duplicates_merged,
        invalid=staged.problem_count,
        problems=staged.problems,
        skipped_invalid=staged.problem_count > 0,
        replaced=replaced,
        new_batch=new_batch,
        queued=counts["queued"],
        linked_done=counts["linked_done"],
        linked_waiting=counts["linked_waiting"],
        already_present=counts["already_present"],
        changed_present=counts["changed_present"],
    )


_JOB_INSERT_COLUMNS = [
    "batch_id",
    *JOB_FIELDS,
    "linked_job_id",
    "state",
    "attempts",
    "output_path",
    "sha256",
    "bytes",
    "created_at",
    "updated_at",
    "finished_at",
]


def _insert_first_copies(batch_id: int, now: datetime, lo: int, hi: int) -> sa.Insert:
    """Staged lines `lo`..`hi` that call the API or reuse an earlier job, as new jobs."""
    s = staging
    done_job = jobs.alias("done_job")
    is_done = s.c.done_id.is_not(None)
    now_value = sa.literal(now, UTCDateTime())
    is_leader = sa.or_(s.c.leader_line.is_(None), s.c.leader_line == s.c.line)
    return sa.insert(jobs).from_select(
        _JOB_INSERT_COLUMNS,
        sa.select(
            sa.literal(batch_id),
            *(s.c[name] for name in JOB_FIELDS),
            sa.func.coalesce(s.c.done_id, s.c.waiting_id),
            sa.case(
                (is_done, JobState.DONE.value),
                (s.c.waiting_id.is_not(None), JobState.LINKED.value),
                else_=JobState.QUEUED.value,
            ),
            sa.literal(0),
            done_job.c.output_path,
            done_job.c.sha256,
            done_job.c.bytes,
            now_value,
            now_value,
            sa.case((is_done, now_value), else_=sa.null()),
        )
        .select_from(s.outerjoin(done_job, done_job.c.id == s.c.done_id))
        .where(s.c.present_id.is_(None), is_leader, s.c.line.between(lo, hi))
        .order_by(s.c.line),
    )


def _insert_later_copies(batch_id: int, now: datetime) -> sa.Insert:
    """Later copies of a row of this manifest, linked to the job of its first copy."""
    s = staging
    now_value = sa.literal(now, UTCDateTime())
    leader_row = s.alias("leader_row")
    leader_job = (
        sa.select(jobs.c.id)
        .select_from(jobs.join(leader_row, leader_row.c.external_id == jobs.c.external_id))
        .where(jobs.c.batch_id == batch_id, leader_row.c.line == s.c.leader_line)
        .scalar_subquery()
    )
    return sa.insert(jobs).from_select(
        _JOB_INSERT_COLUMNS,
        sa.select(
            sa.literal(batch_id),
            *(s.c[name] for name in JOB_FIELDS),
            leader_job,
            sa.literal(JobState.LINKED.value),
            sa.literal(0),
            sa.null(),
            sa.null(),
            sa.null(),
            now_value,
            now_value,
            sa.null(),
        )
        .where(s.c.present_id.is_(None), s.c.leader_line < s.c.line)
        .order_by(s.c.line),
    )
