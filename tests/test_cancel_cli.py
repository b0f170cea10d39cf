"""`changeclothes cancel`: jobs a user gave up on never run, and `run` ignores them."""

from __future__ import annotations

import csv
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.fake import serve_fake
from runner.store import EventKind, open_store
from runner.store.models import events
from tests.run_support import all_jobs, run, submit, write_manifest

pytestmark = pytest.mark.anyio

DECODE = "FailedOperation.ImageDecodeFailed"
TOO_SMALL = "FailedOperation.ImageResolutionExceed"


async def invoke(*args: str) -> Result:
    """The CLI runs its own event loop: call it from a worker thread."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


async def cancel(*args: str) -> Result:
    return await invoke("cancel", *args)


def _manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        writer.writerows(rows)
    return path


BAD_NIGHT = [
    ("good-1", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body"),
    ("undecodable", "images/model-02.jpg", "images/broken-01.jpg", "Upper-body"),
    ("too-small", "images/tiny-01.jpg", "images/clothes-02.jpg", "Dress"),
]


async def _cancel_events(db: str) -> list[int]:
    async with await open_store(db) as store, store.transaction() as conn:
        query = sa.select(events.c.job_id).where(events.c.kind == EventKind.CANCELLED)
        return sorted((await conn.scalars(query)).all())


async def test_cancelled_failures_no_longer_fail_the_run(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=1) as server:
        await submit(db, _manifest(tmp_path / "night.csv", BAD_NIGHT), server.url + "/")
        assert (await run(db, server, tmp_path / "out")).exit_code == 1

        result = await cancel("--db", db, "--code", "FailedOperation.Image*")
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "Cancelled 2 jobs (2 failed)."

        calls_before = dict(server.stats()["calls"])
        again = await run(db, server, tmp_path / "out")
        assert again.exit_code == 0, "cancelled jobs do not make the run fail"
        assert server.stats()["calls"] == calls_before, "and they are never called"
    jobs = {j["external_id"]: j for j in await all_jobs(db)}
    assert {k: j["state"] for k, j in jobs.items()} == {
        "good-1": "done",
        "undecodable": "cancelled",
        "too-small": "cancelled",
    }
    # Why it failed stays on record; the event log says who gave up on it.
    assert jobs["undecodable"]["last_error_code"] == DECODE
    assert await _cancel_events(db) == sorted([jobs["undecodable"]["id"], jobs["too-small"]["id"]])

    status = await invoke("status", "--db", db)
    header, row = status.output.splitlines()[:2]
    assert header.split() == [
        "batch",
        "queued",
        "submitting",
        "generated",
        "linked",
        "done",
        "failed",
        "cancelled",
        "total",
    ]
    assert row.split() == ["night", "0", "0", "0", "0", "1", "0", "2", "3"]


async def test_cancelled_queued_jobs_never_run(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=2) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 5), server.url + "/")
        dry = await cancel("--db", db, "--id", "job-0001", "--id", "job-0003", "--dry-run")
        assert dry.output.strip() == "Would cancel 2 jobs (2 queued)."
        assert [j["state"] for j in await all_jobs(db)] == ["queued"] * 5

        done = await cancel("--db", db, "--batch", "m", "--id", "job-0001", "--id", "job-0003")
        assert done.output.strip() == "Cancelled 2 jobs (2 queued)."
        result = await run(db, server, tmp_path / "out")
        assert server.stats()["calls"] == {"OK": 3}
    assert result.exit_code == 0
    states = {j["external_id"]: j["state"] for j in await all_jobs(db)}
    assert [k for k, s in states.items() if s == "cancelled"] == ["job-0001", "job-0003"]
    written = sorted(p.stem for p in (tmp_path / "out" / "m").glob("*.jpg"))
    assert written == ["job-0000", "job-0002", "job-0004"]


async def test_a_job_that_waited_for_a_cancelled_job_runs_on_its_own(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    row = [("same", "images/model-01.jpg", "images/clothes-01.jpg", "Dress")]
    async with serve_fake(seed=3) as server:
        await submit(db, _manifest(tmp_path / "a.csv", row), server.url + "/")
        await submit(db, _manifest(tmp_path / "b.csv", row), server.url + "/")
        assert [j["state"] for j in await all_jobs(db)] == ["queued", "linked"]

        cancelled = await cancel("--db", db, "--batch", "a")
        assert cancelled.output.strip() == "Cancelled 1 job (1 queued)."
        result = await run(db, server, tmp_path / "out")
        assert server.stats()["calls"] == {"OK": 1}, "b's job paid for its own call"
    assert result.exit_code == 0
    a, b = await all_jobs(db)
    assert (a["state"], b["state"], b["linked_job_id"]) == ("cancelled", "done", None)
    assert (tmp_path / "out" / "b" / "same.jpg").is_file()


async def test_cancel_leaves_running_and_finished_jobs_alone(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=4) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 2), server.url + "/")
        await run(db, server, tmp_path / "out")
    result = await cancel("--db", db, "--batch", "m")
    assert result.exit_code == 0
    assert result.output.strip() == "No queued, failed or linked job matches: nothing to cancel."
    assert [j["state"] for j in await all_jobs(db)] == ["done", "done"]
    assert await _cancel_events(db) == []


async def test_cancel_needs_a_choice_and_a_queue(tmp_path: Path) -> None:
    nothing = await cancel("--db", str(tmp_path / "queue.db"))
    assert nothing.exit_code == 2
    assert "say which jobs to cancel" in nothing.output
    missing = await cancel("--db", str(tmp_path / "queue.db"), "--batch", "x")
    assert missing.exit_code == 2
    assert "no queue database" in missing.output
    assert not (tmp_path / "queue.db").exists()
