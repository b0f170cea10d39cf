"""Fixtures and helpers for the store and manifest tests (imported by those test modules).

PostgreSQL tests run when CHANGECLOTHES_TEST_PG names a server (for example
postgresql+asyncpg://postgres@127.0.0.1:5432/test); each test gets a database of its own,
created from that URL's server and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from runner.store import Store, open_store

PG_ENV = "CHANGECLOTHES_TEST_PG"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new empty PostgreSQL database on the test server; its URL. Dropped on exit."""
    base = pg_base_url()
    if base is None:
        pytest.skip(f"{PG_ENV} is not set")
    url = make_url(base).set(drivername="postgresql+asyncpg")
    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    # Bounded: a test's clean-up must never wait forever on a server that stopped answering.
    admin = create_async_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 30, "command_timeout": 120}
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@asynccontextmanager
async def database_for(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty queue database of `backend`: a SQLite path or a PostgreSQL URL."""
    if backend == "sqlite":
        yield str(tmp_path / "queue.db")
    else:
        async with fresh_pg_database() as url:
            yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh queue database (path or URL) on each backend."""
    async with database_for(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def store(db: str) -> AsyncIterator[Store]:
    """An open store on a fresh database of each backend."""
    s = await open_store(db)
    try:
        yield s
    finally:
        await s.close()


def write_csv(path: Path, rows: list[list[Any]], *, header: list[str] | None = None) -> Path:
    """A small CSV manifest written with the csv module (so quoting is right)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header or ["id", "model_url", "clothes_url", "clothes_type"])
        writer.writerows(rows)
    return path


def pairs(n: int, *, prefix: str = "r", start: int = 0) -> list[list[Any]]:
    """`n` distinct valid rows."""
    return [
        [
            f"{prefix}{i}",
            f"https://img.test/m/{prefix}{i}.jpg",
            f"https://img.test/c/{i}.jpg",
            "Dress",
        ]
        for i in range(start, start + n)
    ]


async def job_rows(store: Store, batch: str | None = None) -> list[Any]:
    """Every job row (id order), straight from the table."""
    from runner.store.models import batches, jobs

    query = sa.select(jobs, batches.c.name.label("batch_name")).join(batches).order_by(jobs.c.id)
    if batch is not None:
        query = query.where(batches.c.name == batch)
    async with store.transaction() as conn:
        return list((await conn.execute(query)).mappings().all())


async def counts_by_group_by(store: Store) -> dict[str, dict[str, int]]:
    """Jobs per batch and state counted the slow way, over every job (what the counts table,
    kept by triggers, must always agree with)."""
    from runner.store.lifecycle import JobState
    from runner.store.models import batches, jobs

    query = (
        sa.select(batches.c.name, jobs.c.state, sa.func.count())
        .select_from(batches.outerjoin(jobs))
        .group_by(batches.c.name, jobs.c.state)
    )
    result: dict[str, dict[str, int]] = {}
    async with store.transaction() as conn:
        for name, state, n in await conn.execute(query):
            per = result.setdefault(name, {str(s): 0 for s in JobState})
            if state is not None:
                per[state] = int(n)
    return result


async def assert_counts_agree(db: str) -> None:
    """`status`'s counts (the counts table) are exactly a GROUP BY over the jobs."""
    async with await open_store(db) as store:
        assert await store.counts() == await counts_by_group_by(store)
