"""A busy account slows the run down but costs the jobs nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runner.fake import serve_fake
from tests.run_support import all_jobs, run, submit, write_manifest

pytestmark = pytest.mark.anyio


async def test_throttled_answers_are_not_charged(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    faults = {"RequestLimitExceeded.JobNumExceed": 0.3, "RequestLimitExceeded": 0.2}
    async with serve_fake(concurrency=2, latency=0.02, faults=faults, seed=3) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 30), server.url + "/")
        result = await run(db, server, tmp_path / "out", concurrency=2)
        calls = server.stats()["calls"]
    assert result.exit_code == 0
    jobs = await all_jobs(db)
    assert [j["state"] for j in jobs] == ["done"] * 30
    throttled = calls.get("RequestLimitExceeded.JobNumExceed", 0) + calls.get(
        "RequestLimitExceeded", 0
    )
    assert throttled >= 5, "the faults must really have been served"
    assert result.stats.throttled == throttled
    assert all(j["attempts"] == 0 for j in jobs), "throttled answers charged an attempt"
    assert calls["OK"] == 30, "each job paid for exactly once"


async def test_someone_else_on_the_account_lowers_concurrency(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The account allows 1 task, the runner is told 4: it must back off to what works."""
    caplog.set_level(logging.WARNING)
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=1, latency=0.05, seed=4) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 12), server.url + "/")
        result = await run(db, server, tmp_path / "out", concurrency=4)
        stats = server.stats()
    assert result.exit_code == 0
    assert stats["calls"]["OK"] == 12
    assert stats["max_in_flight"] == 1
    warnings = [r for r in caplog.records if "another client uses the account" in r.getMessage()]
    assert len(warnings) == 1, "said once, not on every busy answer"
    assert all(j["attempts"] == 0 for j in await all_jobs(db))
