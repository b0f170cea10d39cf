"""A paid result that a killed run had journaled but not stored is kept, not paid again."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest

from runner.api.client import ChangeClothesClient, http_session
from runner.fake import serve_fake
from runner.scheduler.journal import PaidJournal, orphaned_entries
from runner.scheduler.run import utcnow
from runner.store import Event, EventKind, open_store
from tests.run_support import all_jobs, credentials_of, run, submit, write_manifest

pytestmark = pytest.mark.anyio


async def test_journaled_result_of_a_killed_run_is_replayed(tmp_path: Path) -> None:
    db, out = str(tmp_path / "queue.db"), tmp_path / "out"
    async with serve_fake(seed=1) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        # What a run killed at the wrong moment leaves: a job claimed, its call paid, the
        # result journaled, the database never told.
        store = await open_store(db)
        try:
            job = await store.claim_next(utcnow(), "dead-worker")
            assert job is not None
        finally:
            await store.close()
        async with http_session() as session:
            client = ChangeClothesClient(
                session, credentials_of(server), server.url, "ap-singapore"
            )
            result = await client.change_clothes(job.to_request("url"))
        journal = PaidJournal(out, "dead-worker")
        event = Event(
            EventKind.CALL,
            job_id=job.id,
            batch_id=job.batch_id,
            code="OK",
            attempt=1,
            worker="dead-worker",
        )
        journal.append(
            job.id,
            result.result_image,
            utcnow() + timedelta(hours=1),
            result.request_id,
            asdict(event),
        )
        journal.keep()  # the process is gone: its lock with it

        outcome = await run(db, server, out)
        calls = server.stats()["calls"]
    assert outcome.exit_code == 0
    assert outcome.stats.recovered["replayed"] == 1
    assert calls == {"OK": 3}, "the journaled result was not paid for again"
    jobs = {j["id"]: j for j in await all_jobs(db)}
    assert jobs[job.id]["state"] == "done"
    assert jobs[job.id]["request_id"] == result.request_id
    assert list(orphaned_entries(out)) == [], "the journal is gone once replayed"


async def test_a_live_runs_journal_is_left_alone(tmp_path: Path) -> None:
    live = PaidJournal(tmp_path, "alive")
    live.append(1, "http://127.0.0.1:9/x.jpg", utcnow(), "rid", {"kind": "call"})
    try:
        assert list(orphaned_entries(tmp_path)) == []
    finally:
        live.close()
    assert not live.path.exists()


def test_journal_is_emptied_when_nothing_waits(tmp_path: Path) -> None:
    journal = PaidJournal(tmp_path, "busy")
    try:
        line_url = "http://127.0.0.1:9/" + "x" * 500
        for n in range(3000):  # well over the truncation size
            journal.append(n, line_url, utcnow(), "rid", {"kind": "call"})
            if n % 2:
                journal.stored()
                journal.stored()
        assert journal.path.stat().st_size < 1.2 * 1024 * 1024  # 3000 lines would be 1.8 MB
        journal.append(9999, line_url, utcnow(), "rid", {"kind": "call"})
        # An entry still waiting for the database is never truncated away.
        assert journal.path.read_bytes().count(b"\n") >= 1
        assert b'"job_id": 9999' in journal.path.read_bytes()
    finally:
        journal.close()
