"""Which jobs still to do name inputs in a bucket (`s3://…`), so `run` knows at its start
whether it needs the object store (and can fail then, in one sentence, when it cannot use it)."""

from __future__ import annotations

import sqlalchemy as sa

from runner.store.lifecycle import WORK_STATES
from runner.store.models import jobs
from runner.store.queue import Store

BUCKET_PREFIX = "s3://"


async def bucket_input_sample(store: Store, batch: str | None = None) -> str | None:
    """One `s3://` input of a job not finished yet (in `batch`, or any), or None."""
    logo_url = jobs.c.options["logo_url"].as_string()
    query = (
        sa.select(jobs.c.model_url, jobs.c.clothes_url, logo_url)
        .where(
            jobs.c.state.in_([s.value for s in WORK_STATES]),
            sa.or_(
                jobs.c.model_url.startswith(BUCKET_PREFIX, autoescape=True),
                jobs.c.clothes_url.startswith(BUCKET_PREFIX, autoescape=True),
                logo_url.startswith(BUCKET_PREFIX, autoescape=True),
            ),
        )
        .limit(1)
    )
    async with store.transaction() as conn:
        if batch is not None:
            query = query.where(jobs.c.batch_id == await store.batch_id(conn, batch))
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return next(u for u in row if u is not None and u.startswith(BUCKET_PREFIX))
