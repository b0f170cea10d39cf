"""Large inserts into `jobs` on SQLite: indexes whose entries arrive in random order are
built once at the end instead of row by row.

Jobs go in in id order, so most of the table's indexes (by id, batch, state) grow at their
end. The dedupe key is a hash: each new row's entry lands on a random page of that index,
and once the index outgrows the page cache nearly every insert reads and writes a page
(a million rows: ~16 s of a ~25 s insert). Building the index afterwards is one sort.

It happens inside the submit's write transaction: other connections keep reading the
committed schema, index included, and never see it missing (SQLite has one writer; on
PostgreSQL the drop would lock the table against readers, so it is SQLite only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

RANDOM_ORDER_INDEXES = ("ix_jobs_dedupe_state",)
SMALL_CACHE_KIB = 4096
REBUILD_MIN_ROWS = 50_000
"""Fewer new rows than this are inserted with the indexes in place."""


@asynccontextmanager
async def indexes_built_after(
    conn: AsyncConnection, *, new_rows: int, sqlite: bool
) -> AsyncIterator[None]:
    """Around inserting `new_rows` jobs: on SQLite, when they are many and at least as many
    as the table holds (sorting the old rows again must not cost more than it saves), drop
    the random-order indexes and create them again, as they were defined, at the end."""
    if not sqlite or new_rows < REBUILD_MIN_ROWS:
        yield
        return
    existing = (await conn.exec_driver_sql("SELECT max(id) FROM jobs")).scalar() or 0
    if existing > new_rows:
        yield
        return
    definitions: list[tuple[str, str]] = []
    for name in RANDOM_ORDER_INDEXES:
        row = (
            await conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            )
        ).first()
        if row is not None and row[0]:
            definitions.append((name, str(row[0])))
    if not definitions:
        yield
        return
    for name, _ in definitions:
        await conn.exec_driver_sql(f'DROP INDEX "{name}"')
    # What is left grows at its end, which needs few pages in memory; and SQLite sorts in
    # up to a page cache's worth of memory, spilling sorted runs to temporary files and
    # merging them: a small cache keeps both small.
    cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar()
    await conn.exec_driver_sql(f"PRAGMA cache_size = -{SMALL_CACHE_KIB}")
    yield
    for _, sql in definitions:
        await conn.exec_driver_sql(sql)
    await conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")
