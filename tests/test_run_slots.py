"""The run keeps exactly the account's concurrency busy, and no more."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.fake import serve_fake
from tests.run_support import jobs_by_state, run, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.timing]

LATENCY = 0.2


@pytest.mark.parametrize(("concurrency", "count"), [(1, 20), (4, 100)])
async def test_slots_full_never_over_and_makespan_near_ideal(
    tmp_path: Path, concurrency: int, count: int
) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=concurrency, latency=LATENCY, seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", count), server.url + "/")
        started = time.monotonic()
        result = await run(db, server, tmp_path / "out", concurrency=concurrency)
        makespan = time.monotonic() - started
        stats = server.stats()
    assert result.exit_code == 0
    assert {k: v for k, v in (await jobs_by_state(db)).items() if v} == {"done": count}
    assert stats["max_in_flight"] == concurrency
    assert stats["limit_violations"] == 0
    assert stats["calls"] == {"OK": count}
    ideal = count * LATENCY / concurrency
    assert ideal <= makespan <= ideal * 1.10, f"makespan {makespan:.2f} s, ideal {ideal:.2f} s"
    assert len(list((tmp_path / "out" / "m").iterdir())) == count
