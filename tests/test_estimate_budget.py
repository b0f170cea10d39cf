"""Before spending: `submit` and `run --dry-run` say how many paid calls the queue needs,
how long and what it costs; `run --max-paid` caps a night's paid calls (exit 4)."""

from __future__ import annotations

import csv
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.fake import serve_fake
from tests.run_support import jobs_by_state, run, submit, write_manifest

pytestmark = pytest.mark.anyio
NO_CREDENTIALS = {"TENCENTCLOUD_SECRET_ID": None, "TENCENTCLOUD_SECRET_KEY": None}


async def invoke(*args: str) -> Result:
    return await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(cli, list(args), env=NO_CREDENTIALS)
    )


async def test_submit_estimates_after_dedupe_then_dry_run_uses_past_calls(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "q.db")
    path = write_manifest(tmp_path / "night.csv", 6)
    with path.open("a", newline="") as fh:  # the same pair again under another id
        row = next(r for i, r in enumerate(csv.reader(path.open())) if i == 1)
        csv.writer(fh).writerow(["again", *row[1:]])
    async with serve_fake(seed=9, latency=0.05) as server:
        submitted = await invoke(
            "submit", str(path), "--db", db, "--base-url", server.url + "/",
            "--concurrency", "2", "--price", "0.25",
        )  # fmt: skip
        assert submitted.exit_code == 0, submitted.output
        assert "6 paid calls needed (identical rows counted once)" in submitted.output
        assert "at concurrency 2 (assuming 20 s a call" in submitted.output
        assert "about 1 min" in submitted.output  # 3 rounds of 20 s
        assert "Cost: 6 x 0.25 = 1.50" in submitted.output

        assert (await run(db, server, tmp_path / "out", max_jobs=2)).exit_code == 4
        dry = await invoke("run", "--db", db, "--dry-run", "--price", "1")
        assert server.stats()["calls"].get("OK", 0) == 2, "the dry run made no call"
    assert dry.exit_code == 0, dry.output
    assert "Estimate for the whole queue: 4 paid calls needed" in dry.output
    assert "over the last 2 paid calls in this database" in dry.output
    assert "Cost: 4 x 1 = 4.00" in dry.output


async def test_max_paid_stops_claiming_at_the_budget(tmp_path: Path) -> None:
    db, out = str(tmp_path / "q.db"), tmp_path / "out"
    async with serve_fake(seed=10, concurrency=2, latency=0.05) as server:
        await submit(db, write_manifest(tmp_path / "night.csv", 8), server.url + "/")
        capped = await run(db, server, out, concurrency=2, max_paid=3)
        assert capped.exit_code == 4
        assert server.stats()["calls"].get("OK", 0) == 3, "never more than the budget"
        assert (await jobs_by_state(db))["done"] == 3
        assert (await run(db, server, out, concurrency=2)).exit_code == 0
        assert server.stats()["calls"].get("OK", 0) == 8
