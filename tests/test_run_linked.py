"""An identical row is never paid for twice, and still gets its own file in its batch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.fake import serve_fake
from tests.run_support import all_jobs, renamed_copy, run, submit, write_manifest

pytestmark = pytest.mark.anyio


async def test_rows_identical_to_finished_or_queued_jobs_cost_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    first = write_manifest(tmp_path / "monday.csv", 4)
    async with serve_fake(seed=1) as server:
        base = server.url + "/"
        await submit(db, first, base)
        assert (await run(db, server, out)).exit_code == 0
        # The same pairs again under other ids and batches: one already finished, one that
        # waits for a job submitted just before it.
        await submit(db, renamed_copy(first, tmp_path / "tuesday.csv", "again-"), base)
        await submit(db, write_manifest(tmp_path / "extra.csv", 6), base)
        await submit(db, renamed_copy(tmp_path / "extra.csv", tmp_path / "wed.csv", "w-"), base)
        result = await run(db, server, out)
        paid = server.stats()["calls"]["OK"]
    assert result.exit_code == 0
    assert paid == 4 + 2, "only the two new pairs of extra.csv were paid for"
    jobs = await all_jobs(db)
    assert {j["state"] for j in jobs} == {"done"}
    for job in jobs:
        path = Path(job["output_path"])
        assert (
            path.parent.name == {1: "monday", 2: "tuesday", 3: "extra", 4: "wed"}[job["batch_id"]]
        )
        assert path.stem == job["external_id"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == job["sha256"]
