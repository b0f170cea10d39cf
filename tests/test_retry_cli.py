"""`changeclothes retry`: failed jobs back in the queue, fresh, counted per code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from runner.cli import cli
from runner.fake import serve_fake
from runner.scheduler.policy import RetryPolicy
from runner.store import EventKind, Store, open_store, retry_failed
from runner.store.models import events
from runner.store.submit import submit_manifest
from tests.report_support import BASE_URL, DECODE, RPC, build_morning, write_jpeg, write_manifest
from tests.run_support import all_jobs, run, submit
from tests.run_support import write_manifest as write_run_manifest
from tests.store_fixtures import database_for


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, ["retry", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def jobs_of(db: str) -> dict[str, dict[str, Any]]:
    return {j["external_id"]: j for j in anyio.run(all_jobs, db)}


def retry_events(db: str) -> list[tuple[int, str | None, int | None]]:
    async def read() -> list[tuple[int, str | None, int | None]]:
        async with await open_store(db) as store, store.transaction() as conn:
            query = (
                sa.select(events.c.job_id, events.c.code, events.c.attempt)
                .where(events.c.kind == EventKind.RETRY)
                .order_by(events.c.id)
            )
            return [tuple(r) for r in await conn.execute(query)]

    return anyio.run(read)


def test_retry_by_code_moves_only_those_jobs_and_resets_them(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    before = jobs_of(m.db)
    assert before["f-rpc"]["attempts"] == 1

    output = invoke("--db", m.db, "--code", RPC)
    assert "Moved 1 failed job across all batches back to the queue" in output
    assert f"  {RPC}        1" in output
    assert "changeclothes run" in output

    after = jobs_of(m.db)
    rpc = after["f-rpc"]
    assert (rpc["state"], rpc["attempts"], rpc["not_before"]) == ("queued", 0, None)
    assert rpc["finished_at"] is None
    assert rpc["last_error_code"] == RPC, "the last error stays until the next outcome"
    assert after["e-decode"]["state"] == "failed", "another code: left alone"
    assert after["h-later"]["not_before"] == before["h-later"]["not_before"], "queued: untouched"
    assert retry_events(m.db) == [(before["f-rpc"]["id"], RPC, 1)]

    output = invoke("--db", m.db)  # the default: every failed job
    assert "Moved 1 failed job" in output and DECODE in output
    assert "fails again unless the row's images changed" in output
    assert {j["state"] for j in jobs_of(m.db).values()} <= {"queued", "done"}
    assert len(retry_events(m.db)) == 2

    assert "No failed jobs across all batches: nothing to retry." in invoke("--db", m.db)


def test_code_family_dry_run_and_counts_per_code(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    output = invoke("--db", m.db, "--batch", m.batch, "--code", "FailedOperation.*", "--dry-run")
    assert "Would move 2 failed jobs of batch 'spring'" in output
    assert DECODE in output and RPC in output
    assert {k for k, j in jobs_of(m.db).items() if j["state"] == "failed"} == {"e-decode", "f-rpc"}
    assert retry_events(m.db) == []

    assert "No failed jobs with code InvalidParameter*" in invoke(
        "--db", m.db, "--code", "InvalidParameter*"
    )
    output = invoke("--db", m.db, "--code", "FailedOperation.*", "--code", "Other")
    assert "Moved 2 failed jobs" in output


def test_usage_errors(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    result = CliRunner().invoke(cli, ["retry", "--db", m.db, "--all-failed", "--code", RPC])
    assert result.exit_code == 2 and "not both" in result.output
    result = CliRunner().invoke(cli, ["retry", "--db", m.db, "--batch", "nope"])
    assert result.exit_code == 2 and "no batch named 'nope'" in result.output
    assert jobs_of(m.db)["f-rpc"]["state"] == "failed"


def test_retried_jobs_run_again_and_finish(tmp_path: Path) -> None:
    """Attempts exhausted overnight; the service is fine in the morning: retry, run, done."""
    db = str(tmp_path / "q.db")
    out = tmp_path / "out"
    policy = RetryPolicy(max_attempts=2, retry_delay=0.01, retry_delay_cap=0.05)

    async def night() -> tuple[int, int]:
        async with serve_fake(faults={RPC: 1.0}, seed=5) as server:
            await submit(db, write_run_manifest(tmp_path / "m.csv", 4), server.url + "/")
            port = int(server.url.rsplit(":", 1)[1])
            return (await run(db, server, out, retry=policy)).exit_code, port

    exit_code, port = anyio.run(night)
    assert exit_code == 1
    night_jobs = jobs_of(db).values()
    assert {j["state"] for j in night_jobs} == {"failed"}
    assert all(j["attempts"] > 0 for j in night_jobs)

    assert f"  {RPC}        4" in invoke("--db", db, "--all-failed")

    async def morning() -> tuple[int, dict[str, int]]:
        # Same port: the manifest's image URLs point at it.
        async with serve_fake(seed=5, port=port) as server:
            result = await run(db, server, out, retry=policy)
            return result.exit_code, dict(server.stats()["calls"])

    exit_code, calls = anyio.run(morning)
    assert exit_code == 0
    assert calls == {"OK": 4}
    finished = jobs_of(db).values()
    assert {j["state"] for j in finished} == {"done"}
    assert all(Path(j["output_path"]).is_file() for j in finished)


async def _identical_batches(db: str, tmp_path: Path) -> tuple[Store, dict[str, int]]:
    """Batch `a` and batch `b` with the same two rows: b's jobs wait on a's (linked)."""
    store = await open_store(db)
    manifest = write_manifest(tmp_path / "rows.csv", ["r1", "r2"])
    await submit_manifest(store, manifest, batch="a", base_url=BASE_URL)
    second = await submit_manifest(store, manifest, batch="b", base_url=BASE_URL)
    assert second.linked_waiting == 2, second
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    for ident in ("r1", "r2"):
        job = await store.claim_next(now, "w1", "a")
        assert job is not None and job.external_id == ident
        await store.mark_failed(job.id, RPC, "RPC request failed.")
        ids[ident] = job.id
    return store, ids


async def _states(store: Store) -> dict[tuple[str, str], str]:
    async with store.transaction() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT b.name, j.external_id, j.state FROM jobs j "
                "JOIN batches b ON b.id = j.batch_id ORDER BY j.id"
            )
        )
        return {(r[0], r[1]): r[2] for r in rows}


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_identical_jobs_failed_together_are_not_paid_for_twice(
    backend: str, tmp_path: Path
) -> None:
    async with database_for(backend, tmp_path) as db:
        store, ids = await _identical_batches(db, tmp_path)
        try:
            assert set((await _states(store)).values()) == {"failed"}, "b failed with a"

            # Everything retried: a's jobs call again, b's wait for them.
            result = await retry_failed(store, codes=[RPC])
            assert (result.total, result.waiting, result.reused) == (4, 2, 0)
            assert await _states(store) == {
                ("a", "r1"): "queued",
                ("a", "r2"): "queued",
                ("b", "r1"): "linked",
                ("b", "r2"): "linked",
            }
            # a's r1 finishes: b's r1 is done with it; r2 fails again, and b's r2 with it.
            now = datetime.now(UTC)
            job = await store.claim_next(now, "w1")
            assert job is not None and job.id == ids["r1"]
            path = tmp_path / "out" / "a" / "r1.jpg"
            sha, size = write_jpeg(path, 10)
            await store.mark_done(job.id, str(path), sha, size, "req-r1")
            job = await store.claim_next(now, "w1")
            assert job is not None and job.id == ids["r2"]
            await store.mark_failed(job.id, RPC, "again")
            assert await store.claim_next(now, "w1") is None, "b's jobs never call"

            # Only a retried, and done: b's r2, retried later, takes that result at once.
            assert (await retry_failed(store, "a")).total == 1
            job = await store.claim_next(now, "w1", "a")
            assert job is not None and job.id == ids["r2"]
            path2 = tmp_path / "out" / "a" / "r2.jpg"
            sha2, size2 = write_jpeg(path2, 20)
            await store.mark_done(job.id, str(path2), sha2, size2, "req-r2")
            assert (await _states(store))[("b", "r2")] == "failed"

            dry = await retry_failed(store, "b", dry_run=True)
            assert (dry.total, dry.reused, dry.waiting) == (1, 1, 0)
            result = await retry_failed(store, "b")
            assert (result.total, result.reused, result.queued) == (1, 1, 0)
            async with store.transaction() as conn:
                row = (
                    await conn.execute(
                        sa.text(
                            "SELECT state, output_path, sha256, bytes, request_id, "
                            "last_error_code FROM jobs WHERE linked_job_id = :id"
                        ),
                        {"id": ids["r2"]},
                    )
                ).one()
            assert tuple(row) == ("done", str(path2), sha2, size2, "req-r2", None)
            assert await store.claim_next(now, "w1") is None
        finally:
            await store.close()
