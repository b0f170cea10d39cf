"""Pass 1 of a submit: read and check every row of a manifest, staging the valid ones in a
temporary table of the submit's connection (nothing the scheduler sees; memory stays flat
whatever the file's size). Pass 2 (`submit.py`) moves them into `jobs`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runner.manifest import MAX_PROBLEMS, ManifestError, ManifestReader, Problem
from runner.store.models import JSONType

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phase "reading" counts bytes, "queuing" counts rows."""

_staging_meta = sa.MetaData()
staging = sa.Table(
    "submit_staging",
    _staging_meta,
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("model_url", sa.Text, nullable=False),
    sa.Column("clothes_url", sa.Text, nullable=False),
    sa.Column("clothes_type", sa.Text, nullable=False),
    sa.Column("options", JSONType, nullable=False),
    sa.Column("dedupe_key", sa.Text, nullable=False),
    # The key's first 60 bits as a number: indexed after the rows are in (`index_keys`), it
    # finds rows with the same key at a fraction of the cost of indexing the text.
    sa.Column("key_prefix", sa.BigInteger, nullable=False),
    # Filled in pass 2: the job this row already is, or the job it can reuse.
    sa.Column("present_id", sa.Integer),  # a job of the batch with this id
    sa.Column("present_key", sa.Text),  # ... and what it was made from
    sa.Column("done_id", sa.Integer),  # an identical job that is done
    sa.Column("waiting_id", sa.Integer),  # an identical job queued or in flight
    sa.Column("leader_line", sa.Integer),  # the first line of this manifest with this content
    prefixes=["TEMPORARY"],
)


def key_prefix(dedupe_key: str) -> int:
    return int(dedupe_key[:15], 16)  # 60 bits: a positive BIGINT on every backend


async def index_keys(conn: AsyncConnection) -> None:
    """Index the staged rows' keys, once they are all in: one sort instead of a random
    insert per row."""
    # Not a `sa.Index` of the table: that would be created with the table, before the rows.
    await conn.exec_driver_sql(
        "CREATE INDEX ix_submit_staging_prefix ON submit_staging (key_prefix)"
    )


STAGE_ROWS = 5000
"""Rows read before they are written to the staging table: what pass 1 holds in memory."""
RECORDED_LIMIT = 100_000
"""Invalid rows a submit records in `invalid_rows` (the rest are counted)."""


@dataclass
class Staged:
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first MAX_PROBLEMS
    recorded: list[Problem] = field(default_factory=list)  # the first RECORDED_LIMIT
    problem_count: int = 0
    duplicates_merged: int = 0
    sha256: str = ""


async def stage_manifest(
    conn: AsyncConnection,
    path: Path,
    fmt: str | None,
    base_url: str | None,
    chunk_rows: int,
    progress: Progress | None,
    *,
    sqlite: bool,
    refused: Mapping[int, str] | None = None,
) -> Staged:
    """Pass 1: read and check every row; stage the valid ones in the temporary table.
    Rows whose line is in `refused` (the image preflight's verdicts) count as invalid."""
    staged = Staged()
    total = (await anyio.Path(path).stat()).st_size
    buffer: list[_StagedRow] = []

    def problem(p: Problem) -> None:
        staged.problem_count += 1
        if len(staged.problems) < MAX_PROBLEMS:
            staged.problems.append(p)
        if len(staged.recorded) < RECORDED_LIMIT:
            staged.recorded.append(p)

    with ManifestReader(path, fmt=fmt, base_url=base_url) as reader:
        try:
            for item in reader.flat():
                if isinstance(item, Problem):
                    problem(item)
                    continue
                if refused and item[0] in refused:
                    problem(Problem(item[0], refused[item[0]], item[1]))
                    continue
                buffer.append((*item, key_prefix(item[6])))
                if len(buffer) >= min(chunk_rows, STAGE_ROWS):
                    await _insert_staged(conn, buffer, sqlite)
                    staged.rows += len(buffer)
                    buffer.clear()
                    if progress:
                        progress("reading", reader.bytes_read, total)
        except ManifestError as exc:
            for p in exc.problems:
                problem(p)
            staged.problem_count += exc.count - len(exc.problems)
            return staged
        if buffer:
            await _insert_staged(conn, buffer, sqlite)
            staged.rows += len(buffer)
        if progress:
            progress("reading", reader.bytes_read, total)
        staged.duplicates_merged = reader.stats.duplicates_merged
        staged.sha256 = reader.stats.sha256
    return staged


JOB_FIELDS = ("external_id", "model_url", "clothes_url", "clothes_type", "options", "dedupe_key")
"""The staged columns a job is made from (besides its batch and state)."""

_STAGED_COLUMNS = ("line", *JOB_FIELDS, "key_prefix")
_SQLITE_STAGE = (
    f"INSERT INTO submit_staging ({', '.join(_STAGED_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _STAGED_COLUMNS)})"
)
_StagedRow = tuple[int, str, str, str, str, dict[str, Any], str, int]
"""A `FlatRow` and its key prefix."""


async def _insert_staged(conn: AsyncConnection, rows: list[_StagedRow], sqlite: bool) -> None:
    if sqlite:
        # Straight to the driver: SQLAlchemy's per-row parameter handling would double the
        # time of a large submit. JSON is stored as SQLAlchemy's JSON type stores it.
        serialized = [(*r[:5], json.dumps(r[5]) if r[5] else "{}", r[6], r[7]) for r in rows]
        await conn.exec_driver_sql(_SQLITE_STAGE, serialized)
    else:
        await conn.execute(
            sa.insert(staging), [dict(zip(_STAGED_COLUMNS, r, strict=True)) for r in rows]
        )


async def classify(conn: AsyncConnection) -> dict[str, int]:
    """How the staged rows will be queued, counted before they are."""
    s = staging

    def count(where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((where, 1), else_=0)), 0)

    is_new = s.c.present_id.is_(None)
    row = (
        await conn.execute(
            sa.select(
                count(s.c.present_id.is_not(None)).label("already_present"),
                count(
                    sa.and_(s.c.present_id.is_not(None), s.c.present_key != s.c.dedupe_key)
                ).label("changed_present"),
                count(sa.and_(is_new, s.c.done_id.is_not(None))).label("linked_done"),
                count(
                    sa.and_(
                        is_new,
                        s.c.done_id.is_(None),
                        sa.or_(s.c.waiting_id.is_not(None), s.c.leader_line < s.c.line),
                    )
                ).label("linked_waiting"),
                count(
                    sa.and_(
                        is_new,
                        s.c.done_id.is_(None),
                        s.c.waiting_id.is_(None),
                        sa.or_(s.c.leader_line.is_(None), s.c.leader_line == s.c.line),
                    )
                ).label("queued"),
            )
        )
    ).one()
    return {k: int(v) for k, v in row._mapping.items()}


async def line_ranges(conn: AsyncConnection, chunk_rows: int) -> AsyncIterator[tuple[int, int]]:
    """Consecutive (first, last) line ranges of the staging table, `chunk_rows` rows each."""
    last = 0
    while True:
        lo = await conn.scalar(sa.select(sa.func.min(staging.c.line)).where(staging.c.line > last))
        if lo is None:
            return
        hi = await conn.scalar(
            sa.select(staging.c.line)
            .where(staging.c.line >= lo)
            .order_by(staging.c.line)
            .offset(chunk_rows - 1)
            .limit(1)
        )
        if hi is None:
            hi = await conn.scalar(sa.select(sa.func.max(staging.c.line)))
        yield lo, hi
        last = hi


async def count_lines(conn: AsyncConnection, lo: int, hi: int) -> int:
    # Only the chunk's range: counting every line up to `hi` made a large submit quadratic.
    count = sa.select(sa.func.count()).where(staging.c.line.between(lo, hi))
    return int(await conn.scalar(count) or 0)
