"""After a full run with every kind of outcome, the events table tells the same story as the
jobs table: it is what cost accounting and the report read, so they must never part."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runner.fake import serve_fake
from runner.scheduler.policy import RetryPolicy
from runner.store import EventKind, JobSelection, JobState, move_selected, open_store
from runner.store.models import events, jobs
from tests.run_support import run, submit, write_manifest
from tests.store_fixtures import BACKENDS, assert_counts_agree, database_for

pytestmark = pytest.mark.anyio

BAD_ROWS = [
    ("undecodable", "images/model-02.jpg", "images/broken-01.jpg", "Upper-body"),
    ("too-small", "images/tiny-01.jpg", "images/clothes-02.jpg", "Dress"),
]


async def _rows(db: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with await open_store(db) as store, store.transaction() as conn:
        job_rows = [dict(r) for r in (await conn.execute(sa.select(jobs))).mappings()]
        event_rows = [dict(r) for r in (await conn.execute(sa.select(events))).mappings()]
    return job_rows, event_rows


@pytest.mark.parametrize("backend", BACKENDS)
async def test_events_agree_with_job_states(backend: str, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "night.csv", 30)
    with manifest.open("a", newline="") as fh:
        csv.writer(fh).writerows(BAD_ROWS)
    again = write_manifest(tmp_path / "again.csv", 4)  # identical rows: linked, no call
    faults = {"FailedOperation.InnerError": 0.25, "FailedOperation.RpcFail": 0.1}
    async with (
        database_for(backend, tmp_path) as db,
        serve_fake(concurrency=2, latency=0.02, faults=faults, ttl=60, seed=21) as server,
    ):
        await submit(db, manifest, server.url + "/")
        await submit(db, again, server.url + "/")
        async with await open_store(db) as store:  # one job a user gave up on
            await move_selected(store, "cancel", JobSelection("night", ids=["job-0029"]))
        await run(
            db,
            server,
            tmp_path / "out",
            concurrency=3,  # above the account's 2: some answers are throttled
            retry=RetryPolicy(max_attempts=3, retry_delay=0.01, retry_delay_cap=0.05),
        )
        paid_by_server = server.stats()["calls"].get("OK", 0)
        job_rows, event_rows = await _rows(db)
        await assert_counts_agree(db)

    by_job: dict[int, Counter[tuple[str, str | None]]] = {j["id"]: Counter() for j in job_rows}
    for e in event_rows:
        by_job[e["job_id"]][(e["kind"], e["code"])] += 1
    paid = sum(1 for e in event_rows if e["kind"] == EventKind.CALL and e["code"] == "OK")
    assert paid == paid_by_server, "every paid call is on record, and only those"

    states = Counter(j["state"] for j in job_rows)
    assert states[JobState.CANCELLED] == 1 and states[JobState.FAILED] >= 2
    for job in job_rows:
        seen = by_job[job["id"]]
        calls = {code: n for (kind, code), n in seen.items() if kind == EventKind.CALL}
        charged = sum(
            n for (kind, code), n in seen.items()
            if kind == EventKind.CALL and code in faults
        )  # fmt: skip
        where = f"{job['external_id']} ({job['state']}): {dict(seen)}"
        if job["state"] == JobState.DONE and job["linked_job_id"] is not None:
            assert seen == Counter({(EventKind.LINKED, "OK"): 1}), where
        elif job["state"] == JobState.DONE:
            assert calls.get("OK") == 1, where
            assert seen[(EventKind.DOWNLOAD, "OK")] == 1, where
        elif job["state"] == JobState.FAILED and job["linked_job_id"] is not None:
            # Its identical leader failed (which one fails depends on the calls' order).
            code = job["last_error_code"]
            assert code and seen == Counter({(EventKind.LINKED, code): 1}), where
        elif job["state"] == JobState.FAILED:
            assert not calls.get("OK"), where
            last_call = max(
                (e for e in event_rows if e["job_id"] == job["id"] and e["kind"] == "call"),
                key=lambda e: e["id"],
            )
            assert last_call["code"] == job["last_error_code"], where
        elif job["state"] == JobState.CANCELLED:
            assert seen == Counter({(EventKind.CANCELLED, None): 1}), where
        else:
            pytest.fail(f"a job left unfinished: {where}")
        assert job["attempts"] == charged, f"attempts are the charged calls: {where}"
