"""Fix and resubmit, over queues filled by real runs against the fake: the error file goes
straight back in with `submit --replace`, reviewers regenerate done jobs with `retry --id`,
and `run --batch`'s exit code describes only its batch."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.fake import serve_fake
from runner.scheduler.policy import RetryPolicy
from runner.store import EventKind, open_store
from runner.store.models import events
from runner.store.reports import invalid_rows_of
from runner.store.submit import submit_manifest
from tests.run_support import all_jobs, run, submit
from tests.store_fixtures import BACKENDS, database_for

pytestmark = pytest.mark.anyio

FAST_FAIL = RetryPolicy(max_attempts=2, retry_delay=0.05, retry_delay_cap=0.1)
NIGHT = [
    ("good-1", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body"),
    ("good-2", "images/model-02.jpg", "images/clothes-02.jpg", "Lower-body"),
    ("too-small", "images/tiny-01.jpg", "images/clothes-03.jpg", "Dress"),
    ("missing", "images/model-03.jpg", "images/gone.jpg", "Upper-body"),
]


async def invoke(*args: str) -> Result:
    """The CLI runs its own event loop: call it from a worker thread."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


def manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        writer.writerows(rows)
    return path


def states(jobs: list[dict[str, object]]) -> dict[object, object]:
    return {j["external_id"]: j["state"] for j in jobs}


async def test_error_file_fixed_and_resubmitted_ends_the_alerts(tmp_path: Path) -> None:
    db, out = str(tmp_path / "q.db"), tmp_path / "out"
    async with serve_fake(seed=3) as server:
        base = server.url + "/"
        await submit(db, manifest(tmp_path / "night.csv", NIGHT), base)
        first = await run(db, server, out, retry=FAST_FAIL)
        assert first.exit_code == 1
        assert states(await all_jobs(db)) == {
            "good-1": "done",
            "good-2": "done",
            "too-small": "failed",
            "missing": "failed",
        }

        errors = tmp_path / "night.csv"  # the team fixes the error file in place
        exported = await invoke(
            "export", "--db", db, "--state", "failed", "--as-manifest", "-o", str(errors)
        )
        assert exported.exit_code == 0, exported.output
        with errors.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["id"] for r in rows] == ["too-small", "missing"]
        assert rows[0]["error_code"] == "FailedOperation.ImageResolutionExceed"
        assert rows[1]["error_code"] == "FailedOperation.ImageDownloadError"
        rows[0]["model_url"] = base + "images/model-04.jpg"
        rows[1]["clothes_url"] = base + "images/clothes-04.jpg"
        with errors.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

        resubmitted = await invoke("submit", str(errors), "--db", db, "--replace")
        assert resubmitted.exit_code == 0, resubmitted.output
        assert "2 of them replaced by the new row and queued again" in resubmitted.output
        paid_before = server.stats()["calls"].get("OK", 0)
        second = await run(db, server, out, retry=FAST_FAIL)
        paid = server.stats()["calls"].get("OK", 0) - paid_before
    assert second.exit_code == 0
    jobs = await all_jobs(db)
    assert set(states(jobs).values()) == {"done"}
    assert paid == 2, "only the two fixed rows needed a call"
    fixed = {j["external_id"]: j for j in jobs}["too-small"]
    assert fixed["model_url"].endswith("images/model-04.jpg") and fixed["last_error_code"] is None


async def test_replace_leaves_done_jobs_alone_unless_forced(tmp_path: Path) -> None:
    db, out = str(tmp_path / "q.db"), tmp_path / "out"
    async with serve_fake(seed=4) as server:
        base = server.url + "/"
        await submit(db, manifest(tmp_path / "night.csv", NIGHT[:2]), base)
        assert (await run(db, server, out)).exit_code == 0
        changed = [(NIGHT[0][0], "images/model-05.jpg", *NIGHT[0][2:]), NIGHT[1]]
        path = manifest(tmp_path / "night.csv", changed)
        plain = await invoke("submit", str(path), "--db", db, "--base-url", base, "--replace")
        assert "1 with different content left unchanged" in plain.output, plain.output
        assert states(await all_jobs(db))["good-1"] == "done"
        path.write_text(path.read_text() + "\n")  # new content: not the same submission again
        forced = await invoke(
            "submit", str(path), "--db", db, "--base-url", base, "--replace", "--force"
        )
        assert "1 of them replaced" in forced.output, forced.output
    assert states(await all_jobs(db)) == {"good-1": "queued", "good-2": "done"}


async def test_retry_id_regenerates_a_rejected_done_job_as_one_paid_call(tmp_path: Path) -> None:
    db, out = str(tmp_path / "q.db"), tmp_path / "out"
    async with serve_fake(seed=5) as server:
        await submit(db, manifest(tmp_path / "night.csv", NIGHT[:2]), server.url + "/")
        assert (await run(db, server, out)).exit_code == 0
        ids = tmp_path / "rejected.txt"
        ids.write_text("good-2\n")
        dry = await invoke("retry", "--db", db, "--ids-from", str(ids), "--dry-run")
        assert "Would move 1 done job" in dry.output and "1 more paid call" in dry.output
        moved = await invoke("retry", "--db", db, "--id", "good-2")
        assert moved.exit_code == 0 and "Moved 1 done job" in moved.output, moved.output
        assert states(await all_jobs(db)) == {"good-1": "done", "good-2": "queued"}
        paid_before = server.stats()["calls"].get("OK", 0)
        assert (await run(db, server, out)).exit_code == 0
        assert server.stats()["calls"].get("OK", 0) - paid_before == 1


async def test_run_batch_exit_code_ignores_failures_of_other_batches(tmp_path: Path) -> None:
    db, out = str(tmp_path / "q.db"), tmp_path / "out"
    async with serve_fake(seed=6) as server:
        base = server.url + "/"
        await submit(db, manifest(tmp_path / "old.csv", [NIGHT[2]]), base)
        assert (await run(db, server, out, retry=FAST_FAIL)).exit_code == 1
        await submit(db, manifest(tmp_path / "new.csv", NIGHT[:1]), base)
        assert (await run(db, server, out, batch="new")).exit_code == 0
        assert (await run(db, server, out)).exit_code == 1, "the whole queue still has one"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_replace_and_invalid_rows_on_each_backend(backend: str, tmp_path: Path) -> None:
    """The store's side of fix-and-resubmit, on SQLite and PostgreSQL: a failed job takes
    its row's new content with a 'replaced' event, and invalid rows are recorded then
    cleared by the fixed file."""
    base = "http://127.0.0.1:9/"
    rows = [NIGHT[0], NIGHT[2]]
    async with database_for(backend, tmp_path) as db:
        async with await open_store(db) as store:
            path = manifest(tmp_path / "night.csv", [*rows, ("bad", "x", "y", "hat")])
            first = await submit_manifest(store, path, base_url=base, skip_invalid=True)
            assert first.queued == 2 and first.invalid == 1
            assert [r.id for r in (await invalid_rows_of(store))[0]] == ["bad"]
            job = await store.claim_next(datetime.now(UTC), "w1")
            assert job is not None and job.external_id == "good-1"
            await store.mark_failed(job.id, "FailedOperation.ImageResolutionExceed", "too small")

            fixed = [(NIGHT[0][0], "images/model-06.jpg", *NIGHT[0][2:]), NIGHT[2]]
            path = manifest(tmp_path / "night.csv", fixed)
            second = await submit_manifest(store, path, base_url=base, replace=True)
            assert second.replaced == 1 and second.changed_present == 1
            assert (await invalid_rows_of(store))[0] == []
            async with store.transaction() as conn:
                kinds = list(
                    await conn.scalars(sa.select(events.c.kind).where(events.c.job_id == job.id))
                )
        jobs = {j["external_id"]: j for j in await all_jobs(db)}
    assert kinds[-1] == EventKind.REPLACED
    assert jobs["good-1"]["state"] == "queued" and jobs["good-1"]["last_error_code"] is None
    assert jobs["good-1"]["model_url"] == base + "images/model-06.jpg"
