"""Helpers for the run tests: manifests over the fake's images, and runs as library calls."""

from __future__ import annotations

import csv
import hashlib
import itertools
from pathlib import Path
from typing import Any

from runner.api.client import Timeouts
from runner.credentials import Credentials
from runner.execute import execute_run
from runner.fake import FakeServer
from runner.scheduler.policy import RetryPolicy
from runner.scheduler.run import RunResult, RunSettings
from runner.store import open_store
from runner.store.submit import submit_manifest
from tests.seeding import run_seed

TYPES = ("Upper-body", "Lower-body", "Dress")


def write_manifest(path: Path, count: int, **columns: Any) -> Path:
    """`count` distinct jobs over the sample images (a query string keeps each row unique)."""
    models = itertools.cycle(f"images/model-{i:02d}.jpg" for i in range(1, 7))
    clothes = itertools.cycle(f"images/clothes-{i:02d}.jpg" for i in range(1, 13))
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type", *columns])
        for n in range(count):
            writer.writerow(
                [
                    f"job-{n:04d}",
                    f"{next(models)}?row={n}",
                    next(clothes),
                    TYPES[n % 3],
                    *columns.values(),
                ]
            )
    return path


async def submit(db: str, manifest: Path, base_url: str, batch: str | None = None) -> None:
    store = await open_store(db)
    try:
        result = await submit_manifest(store, manifest, base_url=base_url, batch=batch)
        assert not result.refused, result.problems
    finally:
        await store.close()


def credentials_of(server: FakeServer) -> Credentials:
    c = server.credentials
    return Credentials(c.secret_id, c.secret_key, c.token)


def settings(out: Path, **overrides: Any) -> RunSettings:
    """Test settings: fast retries and backoff, no signal handlers (we run in-process)."""
    values: dict[str, Any] = {
        "out_dir": out,
        "handle_signals": False,
        "retry": RetryPolicy(max_attempts=5, retry_delay=0.05, retry_delay_cap=0.2),
        "backoff_base": 0.05,
        "backoff_cap": 0.3,
        "poll_interval": 0.05,
        "seed": run_seed(),  # jitter replays with the run's printed seed
    }
    values.update(overrides)
    return RunSettings(**values)


async def run(db: str, server: FakeServer, out: Path, **overrides: Any) -> RunResult:
    return await execute_run(
        db,
        credentials_of(server),
        server.url,
        "ap-singapore",
        settings(out, **overrides),
        Timeouts(),
    )


async def jobs_by_state(db: str) -> dict[str, int]:
    store = await open_store(db)
    try:
        return await store.state_totals()
    finally:
        await store.close()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def all_jobs(db: str) -> list[Any]:
    """Every job row, read straight from the database the way a user's SQL would."""
    import sqlalchemy as sa

    store = await open_store(db)
    try:
        async with store.transaction() as conn:
            rows = (await conn.execute(sa.text("SELECT * FROM jobs ORDER BY id"))).mappings()
            return [dict(r) for r in rows]
    finally:
        await store.close()


def renamed_copy(source: Path, target: Path, prefix: str) -> Path:
    """`source` with every row's id prefixed: the same pairs under other ids (identical
    rows, which link to the first batch's jobs)."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        row[0] = prefix + row[0]
    with target.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return target
