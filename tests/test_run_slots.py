"""The run keeps exactly the account's concurrency busy, and no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.fake import serve_fake
from tests.run_support import jobs_by_state, run, submit, write_manifest

pytestmark = pytest.mark.anyio

LATENCY = 0.2


@pytest.mark.parametrize(("concurrency", "count"), [(1, 20), (4, 100)])
async def test_slots_fill_to_the_limit_and_never_over(
    tmp_path: Path, concurrency: int, count: int
) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=concurrency, latency=LATENCY, seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        result = await run(db, server, tmp_path / "out", concurrency=concurrency)
        stats = server.stats()
    assert result.exit_code == 0
    assert {k: v for k, v in (await jobs_by_state(db)).items() if v} == {"done": count}
    assert stats["max_in_flight"] == concurrency
    assert stats["limit_violations"] == 0
    assert stats["calls"] == {"OK": count}
    # How full the slots stay over time is a speed, measured side by side in `make bench`
    # (B1), not asserted here: a loaded machine would make such a test flaky.
    assert len(list((tmp_path / "out" / "m").iterdir())) == count
