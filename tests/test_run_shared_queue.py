"""Several runners on one PostgreSQL queue share the work: no job is claimed twice."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from runner.fake import serve_fake
from runner.scheduler.run import RunResult
from tests.run_support import all_jobs, run, submit, write_manifest
from tests.store_fixtures import assert_counts_agree, fresh_pg_database

pytestmark = [pytest.mark.anyio, pytest.mark.pg]


async def test_two_runners_share_one_postgresql_queue(tmp_path: Path) -> None:
    async with fresh_pg_database() as db, serve_fake(concurrency=2, latency=0.1, seed=8) as srv:
        await submit(db, write_manifest(tmp_path / "m.csv", 30), srv.url + "/")
        results: dict[str, RunResult] = {}

        async def one(name: str) -> None:
            results[name] = await run(db, srv, tmp_path / "out", worker=name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "host-a")
            tg.start_soon(one, "host-b")
        stats = srv.stats()
        jobs = await all_jobs(db)
        await assert_counts_agree(db)  # kept by both runners' transactions at once
    assert [r.exit_code for r in results.values()] == [0, 0]
    assert [j["state"] for j in jobs] == ["done"] * 30
    assert stats["calls"] == {"OK": 30}, "a job was paid for twice"
    assert stats["limit_violations"] == 0
    assert results["host-a"].stats.calls > 0 and results["host-b"].stats.calls > 0
