"""The queue read the morning after a run: what `changeclothes report` shows.

Kept apart from `queue.py`, which holds the scheduler's transitions; like it, every query here
is plain SQLAlchemy Core and runs on SQLite and PostgreSQL alike.

- `report_data` gathers what `changeclothes report` shows, per batch: jobs per state, calls
  by answer, API time, expiries, the failed and unfinished jobs (capped), and done results
  for the gallery (capped). It reads; the HTML lives in `runner.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.api.errors import ErrorClass
from runner.clock import utcnow
from runner.store.images import cached_checks
from runner.store.lifecycle import WORK_STATES, EventKind, JobState
from runner.store.models import batches, events, invalid_rows, jobs
from runner.store.queue import Store
from runner.store.views import InvalidRow

ROW_LIMIT = 1000
"""Failed and unfinished jobs listed per batch in a report (the export has them all)."""

GALLERY_LIMIT = 10_000
"""Jobs shown per batch in a report's review sheet (and done results in its gallery data)."""


# -- report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobLine:
    """A failed or unfinished job as the report lists it."""

    id: str  # the manifest's id
    state: str
    attempts: int
    code: str | None
    message: str | None
    model_url: str
    clothes_url: str
    clothes_type: str
    not_before: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ResultImage:
    """A done job's result file, as recorded (`output_path` as the run wrote it)."""

    id: str
    output_path: str
    bytes: int | None
    finished_at: datetime | None


@dataclass(frozen=True)
class SheetJob:
    """One job of the review sheet: its inputs, its state and, when done, its result file."""

    id: str
    state: str
    clothes_type: str
    model_url: str
    clothes_url: str
    code: str | None
    message: str | None
    output_path: str | None


@dataclass(frozen=True)
class BatchReport:
    name: str
    submitted_at: datetime | None
    counts: dict[str, int]  # jobs per state, every state present
    calls_by_code: dict[str, int] = field(default_factory=dict)  # API calls by answer ('OK')
    throttled: int = 0  # calls answered with a throttling code (never charged)
    api_ms: int = 0  # time spent in API calls, summed over calls
    expired: int = 0  # result URLs that expired before their download: generated again
    downloads: int = 0
    download_failures: int = 0
    download_bytes: int = 0
    retried: int = 0  # jobs moved back from failed by `changeclothes retry`
    failed_by_code: dict[str, int] = field(default_factory=dict)  # failed jobs by last code
    failed: list[JobLine] = field(default_factory=list)  # the first `ROW_LIMIT`, by code
    unfinished: list[JobLine] = field(default_factory=list)  # the first `ROW_LIMIT`, by id
    gallery: list[ResultImage] = field(default_factory=list)  # the first `GALLERY_LIMIT`
    sheet: list[SheetJob] = field(default_factory=list)  # the first `GALLERY_LIMIT`, by id
    invalid: list[InvalidRow] = field(default_factory=list)  # rows a submit skipped
    invalid_total: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return self.counts.get(JobState.DONE, 0)

    @property
    def failed_total(self) -> int:
        return self.counts.get(JobState.FAILED, 0)

    @property
    def unfinished_total(self) -> int:
        return sum(self.counts.get(s, 0) for s in WORK_STATES)

    @property
    def calls(self) -> int:
        return sum(self.calls_by_code.values())

    @property
    def paid_calls(self) -> int:
        """Successful calls: each one is billed."""
        return self.calls_by_code.get("OK", 0)

    @property
    def failed_calls_by_code(self) -> dict[str, int]:
        """Calls that got an error answer (throttling included), most frequent first."""
        errors = {c: n for c, n in self.calls_by_code.items() if c != "OK"}
        return dict(sorted(errors.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    database: str  # the database URL, password masked
    batches: list[BatchReport]
    row_limit: int = ROW_LIMIT
    gallery_limit: int = GALLERY_LIMIT
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # input URL -> cached thumbnail


async def report_data(
    store: Store,
    batch: str | None = None,
    *,
    row_limit: int = ROW_LIMIT,
    gallery_limit: int = GALLERY_LIMIT,
) -> ReportData:
    """Everything `changeclothes report` shows, for every batch or only `batch`.

    Raises UnknownBatchError for a batch name that does not exist.
    """
    counts = await store.counts(batch)
    invalid, invalid_counts = await invalid_rows_of(store, batch, limit=row_limit)
    async with store.transaction() as conn:
        query = sa.select(batches.c.id, batches.c.name, batches.c.submitted_at).order_by(
            batches.c.id
        )
        if batch is not None:
            query = query.where(batches.c.id == await store.batch_id(conn, batch))
        rows = (await conn.execute(query)).all()
        activity = await _events_by_batch(conn, [r.id for r in rows])
        reports = []
        for row in rows:
            reports.append(
                BatchReport(
                    name=row.name,
                    submitted_at=row.submitted_at,
                    counts=counts.get(row.name, {str(s): 0 for s in JobState}),
                    failed_by_code=await _failed_by_code(conn, row.id),
                    failed=await _failed_jobs(conn, row.id, row_limit),
                    unfinished=await _unfinished_jobs(conn, row.id, row_limit),
                    gallery=await _done_results(conn, row.id, gallery_limit),
                    sheet=await _sheet_jobs(conn, row.id, gallery_limit),
                    invalid=[r for r in invalid if r.batch == row.name],
                    invalid_total=invalid_counts.get(row.name, 0),
                    **activity.get(row.id, {}),
                )
            )
    urls = {u for b in reports for j in b.sheet for u in (j.model_url, j.clothes_url)}
    checks = await cached_checks(store, urls)
    return ReportData(
        generated_at=utcnow(),
        database=store.url_for_display,
        batches=reports,
        row_limit=row_limit,
        gallery_limit=gallery_limit,
        thumbnails={u: c.thumbnail for u, c in checks.items() if c.thumbnail},
    )


async def _events_by_batch(
    conn: AsyncConnection, batch_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """Per batch: the `BatchReport` fields that come from the events table."""
    if not batch_ids:
        return {}
    query = (
        sa.select(
            events.c.batch_id,
            events.c.kind,
            events.c.code,
            events.c.error_class,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(events.c.latency_ms), 0),
            sa.func.coalesce(sa.func.sum(events.c.bytes), 0),
        )
        .where(events.c.batch_id.in_(batch_ids))
        .group_by(events.c.batch_id, events.c.kind, events.c.code, events.c.error_class)
    )
    result: dict[int, dict[str, Any]] = {}
    for batch_id, kind, code, error_class, n, latency, size in await conn.execute(query):
        fields = result.setdefault(
            batch_id,
            {
                "calls_by_code": {},
                "throttled": 0,
                "api_ms": 0,
                "expired": 0,
                "downloads": 0,
                "download_failures": 0,
                "download_bytes": 0,
                "retried": 0,
            },
        )
        n, latency, size = int(n), int(latency), int(size)
        if kind == EventKind.CALL:
            key = code or "?"
            fields["calls_by_code"][key] = fields["calls_by_code"].get(key, 0) + n
            fields["api_ms"] += latency
            if error_class == ErrorClass.THROTTLE:
                fields["throttled"] += n
        elif kind == EventKind.DOWNLOAD:
            if code in (None, "OK"):
                fields["downloads"] += n
                fields["download_bytes"] += size
            else:
                fields["download_failures"] += n
        elif kind == EventKind.EXPIRED:
            fields["expired"] += n
        elif kind == EventKind.RETRY:
            fields["retried"] += n
    return result


async def _failed_by_code(conn: AsyncConnection, batch_id: int) -> dict[str, int]:
    query = (
        sa.select(jobs.c.last_error_code, sa.func.count())
        .where(jobs.c.batch_id == batch_id, jobs.c.state == JobState.FAILED)
        .group_by(jobs.c.last_error_code)
    )
    found = {code or "?": int(n) for code, n in await conn.execute(query)}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def _job_line(row: Any) -> JobLine:
    return JobLine(
        id=row.external_id,
        state=row.state,
        attempts=int(row.attempts),
        code=row.last_error_code,
        message=row.last_error_message,
        model_url=row.model_url,
        clothes_url=row.clothes_url,
        clothes_type=row.clothes_type,
        not_before=row.not_before,
        finished_at=row.finished_at,
    )


_LINE_COLUMNS = (
    jobs.c.id,
    jobs.c.external_id,
    jobs.c.state,
    jobs.c.attempts,
    jobs.c.last_error_code,
    jobs.c.last_error_message,
    jobs.c.model_url,
    jobs.c.clothes_url,
    jobs.c.clothes_type,
    jobs.c.not_before,
    jobs.c.finished_at,
)


async def _failed_jobs(conn: AsyncConnection, batch_id: int, limit: int) -> list[JobLine]:
    query = (
        sa.select(*_LINE_COLUMNS)
        .where(jobs.c.batch_id == batch_id, jobs.c.state == JobState.FAILED)
        .order_by(jobs.c.last_error_code, jobs.c.id)
        .limit(limit)
    )
    return [_job_line(r) for r in await conn.execute(query)]


async def _unfinished_jobs(conn: AsyncConnection, batch_id: int, limit: int) -> list[JobLine]:
    query = (
        sa.select(*_LINE_COLUMNS)
        .where(jobs.c.batch_id == batch_id, jobs.c.state.in_(sorted(WORK_STATES)))
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [_job_line(r) for r in await conn.execute(query)]


async def _sheet_jobs(conn: AsyncConnection, batch_id: int, limit: int) -> list[SheetJob]:
    if limit <= 0:
        return []
    query = (
        sa.select(
            jobs.c.external_id,
            jobs.c.state,
            jobs.c.clothes_type,
            jobs.c.model_url,
            jobs.c.clothes_url,
            jobs.c.last_error_code,
            jobs.c.last_error_message,
            jobs.c.output_path,
        )
        .where(jobs.c.batch_id == batch_id)
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [SheetJob(*r) for r in await conn.execute(query)]


async def _done_results(conn: AsyncConnection, batch_id: int, limit: int) -> list[ResultImage]:
    if limit <= 0:
        return []
    query = (
        sa.select(jobs.c.external_id, jobs.c.output_path, jobs.c.bytes, jobs.c.finished_at)
        .where(
            jobs.c.batch_id == batch_id,
            jobs.c.state == JobState.DONE,
            jobs.c.output_path.is_not(None),
        )
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [
        ResultImage(r.external_id, r.output_path, r.bytes, r.finished_at)
        for r in await conn.execute(query)
    ]


# -- invalid rows ------------------------------------------------------------------------------


async def invalid_rows_of(
    store: Store, batch: str | None = None, *, limit: int | None = None
) -> tuple[list[InvalidRow], dict[str, int]]:
    """The recorded invalid rows (the first `limit`, by batch and line) and how many each
    batch has. Raises UnknownBatchError for an unknown batch name."""
    async with store.transaction() as conn:
        where: sa.ColumnElement[bool] = sa.true()
        if batch is not None:
            where = invalid_rows.c.batch_id == await store.batch_id(conn, batch)
        joined = invalid_rows.join(batches, batches.c.id == invalid_rows.c.batch_id)
        counted = (
            sa.select(batches.c.name, sa.func.count())
            .select_from(joined)
            .where(where)
            .group_by(batches.c.name)
        )
        counts = {name: int(n) for name, n in await conn.execute(counted)}
        query = (
            sa.select(
                batches.c.name,
                invalid_rows.c.line,
                invalid_rows.c.external_id,
                invalid_rows.c.problems,
            )
            .select_from(joined)
            .where(where)
            .order_by(invalid_rows.c.batch_id, invalid_rows.c.line)
        )
        if limit is not None:
            query = query.limit(limit)
        rows = [InvalidRow(*r) for r in await conn.execute(query)]
    return rows, counts
