"""The queue as rows for `changeclothes export`: one dict per job, fetched in chunks by id
(keyset paging, one short read transaction per chunk), so a million-job export holds one chunk
in memory; then the manifest rows a submit skipped as invalid."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa

from runner.store.models import batches, jobs
from runner.store.queue import Store
from runner.store.reports import invalid_rows_of

EXPORT_CHUNK = 2000
"""Jobs read per query by `iter_export_rows`."""

EXPORT_COLUMNS = (
    "batch",
    "id",
    "state",
    "model_url",
    "clothes_url",
    "clothes_type",
    "attempts",
    "last_error_code",
    "last_error_message",
    "output_path",
    "sha256",
    "bytes",
    "request_id",
    "finished_at",
)
"""The export's columns, in order. `id` is the manifest's id (the output file's name)."""


INVALID_STATE = "invalid"
"""The export's state for a manifest row a submit skipped (it never became a job)."""


async def iter_export_rows(
    store: Store,
    batch: str | None = None,
    *,
    states: Sequence[str] = (),
    chunk: int = EXPORT_CHUNK,
) -> AsyncIterator[dict[str, Any]]:
    """One dict per job (keys `EXPORT_COLUMNS` and `options`), in job order, for every batch
    or `batch`, only in `states` when given; then the recorded invalid rows (state
    `invalid`, the line and problems as the message) when `states` is empty or names it.

    Jobs are read `chunk` at a time, each chunk in its own short read transaction, and no
    connection is held while the caller handles the rows: memory stays flat at any size and a
    run may go on writing meanwhile. Raises UnknownBatchError for an unknown batch name.
    """
    where: sa.ColumnElement[bool] = sa.true()
    if batch is not None:
        async with store.transaction() as conn:
            where = jobs.c.batch_id == await store.batch_id(conn, batch)
    job_states = [s for s in states if s != INVALID_STATE]
    if states:
        where = sa.and_(where, jobs.c.state.in_(job_states))
    query = (
        sa.select(
            jobs.c.id.label("job_pk"),
            batches.c.name.label("batch"),
            jobs.c.external_id.label("id"),
            jobs.c.state,
            jobs.c.model_url,
            jobs.c.clothes_url,
            jobs.c.clothes_type,
            jobs.c.attempts,
            jobs.c.last_error_code,
            jobs.c.last_error_message,
            jobs.c.output_path,
            jobs.c.sha256,
            jobs.c.bytes,
            jobs.c.request_id,
            jobs.c.finished_at,
            jobs.c.options,
        )
        .select_from(jobs.join(batches, batches.c.id == jobs.c.batch_id))
        .order_by(jobs.c.id)
        .limit(chunk)
    )
    last = 0
    while True:
        async with store.transaction() as conn:
            rows = (await conn.execute(query.where(where, jobs.c.id > last))).mappings().all()
        for row in rows:
            yield {name: row[name] for name in (*EXPORT_COLUMNS, "options")}
        if len(rows) < chunk:
            break
        last = rows[-1]["job_pk"]
    if states and INVALID_STATE not in states:
        return
    invalid, _ = await invalid_rows_of(store, batch)
    for bad in invalid:
        yield {
            **dict.fromkeys(EXPORT_COLUMNS),
            "batch": bad.batch,
            "id": bad.id,
            "state": INVALID_STATE,
            "last_error_message": f"line {bad.line}: {bad.problems}",
            "options": {},
        }
