"""Fix and resubmit: a submit's invalid rows recorded with their reasons, and `--replace`
giving jobs whose row changed their new content. Both run inside the submit's write
transaction, over its staging table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.manifest import Problem
from runner.store.lifecycle import TRANSITIONS, apply
from runner.store.models import invalid_rows, jobs
from runner.store.staging import JOB_FIELDS, staging

_NEW_CONTENT = tuple(f for f in JOB_FIELDS if f != "external_id")


async def replace_changed(
    conn: AsyncConnection, batch_id: int, now: datetime, *, force: bool
) -> int:
    """Jobs of the batch whose staged row differs take its content and are queued afresh
    (`replace`: queued, failed, cancelled or linked; with `force` done ones too). Returns
    how many."""
    s = staging
    changed = sa.select(s.c.present_id).where(
        s.c.present_id.is_not(None), s.c.present_key != s.c.dedupe_key
    )
    new_content = {
        name: sa.select(s.c[name]).where(s.c.present_id == jobs.c.id).scalar_subquery()
        for name in _NEW_CONTENT
    }
    total = 0
    for name in ("replace", "replace_done") if force else ("replace",):
        ids = list(
            await conn.scalars(
                sa.select(jobs.c.id).where(
                    jobs.c.batch_id == batch_id,
                    jobs.c.id.in_(changed),
                    jobs.c.state.in_(sorted(TRANSITIONS[name].sources)),
                )
            )
        )
        if ids:
            moved = await apply(
                conn, name, now, ids=ids, values=new_content, code=jobs.c.last_error_code
            )
            total += moved.count
    return total


async def record_invalid_rows(
    conn: AsyncConnection, batch_id: int, problems: Sequence[Problem], now: datetime
) -> None:
    """The batch's invalid rows become those this submit skipped: the rows of the latest
    manifest submitted to it (a fixed file submitted again clears the reasons it fixed)."""
    await conn.execute(sa.delete(invalid_rows).where(invalid_rows.c.batch_id == batch_id))
    if problems:
        await conn.execute(
            sa.insert(invalid_rows),
            [
                {
                    "batch_id": batch_id,
                    "line": p.line,
                    "external_id": p.id,
                    "problems": p.message,
                    "recorded_at": now,
                }
                for p in problems
            ],
        )
