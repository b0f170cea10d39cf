"""Queue transitions the scheduler relies on, on SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from runner.clock import utcnow
from runner.store import (
    Event,
    EventKind,
    Job,
    JobState,
    JobStateError,
    Store,
    UnknownBatchError,
    open_store,
)
from runner.store.models import runners
from runner.store.runners import STALE_AFTER, DeclaredDead, list_runners, reap, register
from runner.store.submit import submit_manifest
from tests.store_fixtures import job_rows, pairs, write_csv

pytestmark = pytest.mark.anyio
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


async def add_batch(store: Store, tmp_path: Path, name: str, n: int, **kw: object) -> None:
    path = write_csv(tmp_path / f"{name}.csv", pairs(n, prefix=f"{name}-"))
    result = await submit_manifest(store, path, **kw)  # type: ignore[arg-type]
    assert result.queued == n


async def claim(store: Store, now: datetime = T0, batch: str | None = None) -> Job:
    job = await store.claim_next(now, "w1", batch)
    assert job is not None
    return job


async def test_claim_takes_the_oldest_queued_job_and_marks_it(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 3)
    job = await claim(store)
    assert (job.external_id, job.state, job.claimed_by, job.batch_name) == (
        "a-0",
        "submitting",
        "w1",
        "a",
    )
    assert job.claimed_at == T0 and job.claimed_at.tzinfo is not None
    assert (await claim(store)).external_id == "a-1"
    assert (await store.get_job(job.id)).state == JobState.SUBMITTING  # type: ignore[union-attr]


async def test_to_request_builds_the_api_body(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "logo.csv"
    path.write_text(
        "id,model_url,clothes_url,clothes_type,logo_url,logo_rect,rsp_img_type\n"
        'x,https://m/1.jpg,https://c/1.jpg,upper body,https://l/1.png,"1,2,3,4",base64\n'
        "y,https://m/2.jpg,https://c/2.jpg,dress,,,\n"
    )
    await submit_manifest(store, path)
    x, y = await claim(store), await claim(store)
    assert x.to_request("url").to_body() == {
        "ModelUrl": "https://m/1.jpg",
        "ClothesUrl": "https://c/1.jpg",
        "ClothesType": "Upper-body",
        "LogoParam": {
            "LogoUrl": "https://l/1.png",
            "LogoRect": {"X": 1, "Y": 2, "Width": 3, "Height": 4},
        },
        "RspImgType": "base64",
    }
    assert y.to_request("url").to_body()["RspImgType"] == "url"


async def test_backed_off_jobs_wait_for_not_before(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 2)
    first = await claim(store)
    attempts = await store.requeue(
        first.id,
        not_before=T0 + timedelta(seconds=30),
        charge_attempt=True,
        code="InnerError",
        message="boom",
    )
    assert attempts == 1
    second = await claim(store)
    assert second.external_id == "a-1"
    assert await store.claim_next(T0, "w1") is None
    assert await store.next_not_before(now=T0) == T0 + timedelta(seconds=30)
    assert await store.claim_next(T0 + timedelta(seconds=29), "w1") is None
    again = await claim(store, T0 + timedelta(seconds=30))
    assert (again.id, again.attempts, again.last_error_code) == (first.id, 1, "InnerError")
    assert await store.next_not_before(now=T0) is None


async def test_requeue_without_charge_and_release_keep_attempts(
    store: Store, tmp_path: Path
) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = await claim(store)
    assert (
        await store.requeue(
            job.id,
            not_before=None,
            charge_attempt=False,
            code="RequestLimitExceeded",
            message="slow down",
        )
        == 0
    )
    job = await claim(store)
    assert await store.release(job.id) is True
    assert await store.release(job.id) is False  # already queued: nothing to do
    job = await claim(store)
    assert (job.attempts, job.claimed_by) == (0, "w1")


async def test_generated_then_done(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = await claim(store)
    expires = T0 + timedelta(hours=1)
    await store.mark_generated(job.id, "https://result/1.jpg", expires, "req-1")
    [generated] = await store.generated_jobs()
    assert (generated.state, generated.result_url, generated.result_expires_at) == (
        "generated",
        "https://result/1.jpg",
        expires,
    )
    await store.mark_done(job.id, "/out/a/a-0.jpg", "f" * 64, 1234)
    done = await store.get_job(job.id)
    assert done is not None
    assert (done.state, done.output_path, done.bytes, done.request_id) == (
        "done",
        "/out/a/a-0.jpg",
        1234,
        "req-1",
    )
    assert done.finished_at is not None
    assert not await store.has_work()


async def test_base64_result_goes_straight_to_done(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = await claim(store)
    await store.mark_done(job.id, "/out/x.jpg", "e" * 64, 10, request_id="req-9")
    assert (await store.get_job(job.id)).request_id == "req-9"  # type: ignore[union-attr]


async def test_wrong_transitions_are_refused(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = (await job_rows(store))[0]
    with pytest.raises(JobStateError, match="queued"):
        await store.mark_generated(job["id"], "https://r", T0, "r")
    with pytest.raises(JobStateError, match="queued"):
        await store.mark_done(job["id"], "/x", "0" * 64, 1)
    with pytest.raises(JobStateError):
        await store.expire_generated(job["id"])
    with pytest.raises(JobStateError, match="does not exist"):
        await store.requeue(9999, not_before=None, charge_attempt=True, code="X", message="y")
    await store.mark_failed(job["id"], "FailedOperation.ImageDecodeFailed", "bad image")
    with pytest.raises(JobStateError, match="failed"):
        await store.mark_failed(job["id"], "X", "again")


async def test_expired_result_is_queued_again_without_charge(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = await claim(store)
    await store.mark_generated(job.id, "https://r/1", T0 + timedelta(hours=1), "req")
    await store.expire_generated(job.id)
    again = await claim(store)
    assert (again.id, again.attempts, again.result_url) == (job.id, 0, None)
    assert (await store.event_summary()).expired == 1


async def test_a_restarted_runner_takes_back_what_its_earlier_life_held(
    store: Store, tmp_path: Path
) -> None:
    await add_batch(store, tmp_path, "a", 3)
    await register(store, "w1")
    stuck = await claim(store)
    fresh_url = await claim(store)
    old_url = await claim(store)
    await store.mark_generated(fresh_url.id, "https://r/2", T0 + timedelta(hours=1), "r2")
    await store.mark_generated(old_url.id, "https://r/3", T0 + timedelta(minutes=5), "r3")
    await register(store, "w1")  # the same runner again, after a crash
    reaped = await reap(store, "w1", STALE_AFTER, now=T0 + timedelta(minutes=10))
    assert reaped.counts() == {"recovered": 1, "expired": 1}
    assert [j.id for j in reaped.adopted] == [fresh_url.id]
    states = {r["id"]: (r["state"], r["attempts"], r["claimed_by"]) for r in await job_rows(store)}
    assert states[stuck.id] == ("queued", 0, None)
    assert states[fresh_url.id] == ("generated", 0, "w1")
    assert states[old_url.id] == ("queued", 0, None)
    summary = await store.event_summary()
    assert (summary.recovered, summary.expired) == (1, 1)


async def test_recovery_takes_back_only_the_jobs_of_dead_runners(
    store: Store, tmp_path: Path
) -> None:
    await add_batch(store, tmp_path, "a", 4)
    dead_pid = _a_pid_that_is_gone()
    for name, pid in (("me", None), ("alive", None), ("lapsed", None), ("gone", dead_pid)):
        await register(store, name, pid=pid)
    claimed = {name: await store.claim_next(T0, name) for name in ("alive", "lapsed", "gone")}
    async with store.transaction(immediate=True) as conn:  # its machine slept
        await conn.execute(
            sa.update(runners)
            .where(runners.c.id == "lapsed")
            .values(heartbeat=utcnow() - timedelta(seconds=61))
        )
    reaped = await reap(store, "me", STALE_AFTER, now=T0)
    assert sorted(reaped.runners) == ["gone", "lapsed"]
    assert reaped.recovered == 2
    states = {r["id"]: (r["state"], r["claimed_by"]) for r in await job_rows(store)}
    assert states[claimed["alive"].id] == ("submitting", "alive")  # type: ignore[union-attr]
    assert states[claimed["lapsed"].id] == ("queued", None)  # type: ignore[union-attr]
    assert states[claimed["gone"].id] == ("queued", None)  # type: ignore[union-attr]
    assert [r.id for r in await list_runners(store)] == ["me", "alive"]
    # The lapsed runner wakes up: it learns it was declared dead, and records nothing.
    store.runner = "lapsed"
    with pytest.raises(JobStateError):
        await store.mark_generated(claimed["lapsed"].id, "https://r/x", T0, "rx")  # type: ignore[union-attr]
    with pytest.raises(DeclaredDead):
        await reap(store, "lapsed", STALE_AFTER)


def _a_pid_that_is_gone() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    return int(child.stdout)


async def test_batch_scope_and_counts(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 2)
    await add_batch(store, tmp_path, "b", 3)
    job = await claim(store, batch="b")
    assert job.batch_name == "b" and job.external_id == "b-0"
    assert await store.has_work("a")
    assert await store.counts("b") == {
        "b": {
            "queued": 2,
            "submitting": 1,
            "generated": 0,
            "done": 0,
            "failed": 0,
            "linked": 0,
            "cancelled": 0,
        }
    }
    assert list(await store.counts()) == ["a", "b"]
    assert (await store.state_totals())["queued"] == 4
    with pytest.raises(UnknownBatchError, match="known: a, b"):
        await store.counts("zzz")


async def test_events_are_summarised(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    job = await claim(store)
    await store.record_event(
        Event(EventKind.CALL, job_id=job.id, code="RequestLimitExceeded", latency_ms=50), at=T0
    )
    await store.record_event(
        Event(EventKind.CALL, job_id=job.id, code="OK", request_id="r", latency_ms=900),
        at=T0 + timedelta(seconds=5),
    )
    await store.record_event(
        Event(EventKind.DOWNLOAD, job_id=job.id, code="OK", size=2048),
        at=T0 + timedelta(seconds=6),
    )
    summary = await store.event_summary()
    assert summary.calls_by_code == {"RequestLimitExceeded": 1, "OK": 1}
    assert (summary.paid_calls, summary.calls, summary.downloads, summary.download_bytes) == (
        1,
        2,
        1,
        2048,
    )
    later = await store.event_summary(since=T0 + timedelta(seconds=1))
    assert later.calls_by_code == {"OK": 1}
    async with store.transaction() as conn:
        import sqlalchemy as sa

        from runner.store.models import events

        batch_ids = set((await conn.scalars(sa.select(events.c.batch_id))).all())
    assert batch_ids == {job.batch_id}  # filled in from the job


async def test_naive_datetimes_are_refused(store: Store, tmp_path: Path) -> None:
    await add_batch(store, tmp_path, "a", 1)
    with pytest.raises(Exception, match="naive datetime"):
        await store.claim_next(datetime(2025, 1, 1), "w1")  # noqa: DTZ001


async def test_concurrent_claimers_never_get_the_same_job(db: str, tmp_path: Path) -> None:
    setup = await open_store(db)
    await add_batch(setup, tmp_path, "a", 60)
    await setup.close()
    stores = [await open_store(db) for _ in range(4)]
    claimed: list[int] = []

    async def worker(s: Store, name: str) -> None:
        while (job := await s.claim_next(T0, name)) is not None:
            claimed.append(job.id)

    try:
        async with anyio.create_task_group() as tg:
            for i, s in enumerate(stores):
                for k in range(2):
                    tg.start_soon(worker, s, f"w{i}-{k}")
    finally:
        for s in stores:
            await s.close()
    assert len(claimed) == 60 and len(set(claimed)) == 60


def test_claimers_in_separate_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"

    async def setup() -> None:
        async with await open_store(str(path)) as s:
            await add_batch(s, tmp_path, "a", 150)

    anyio.run(setup)
    code = textwrap.dedent(
        f"""
        import anyio
        from datetime import datetime, UTC
        from runner.store import open_store
        async def main():
            async with await open_store({str(path)!r}) as s:
                while (job := await s.claim_next(datetime.now(UTC), "p")) is not None:
                    print(job.id, flush=True)
        anyio.run(main)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ids = [int(line) for out, _ in outputs for line in out.split()]
    assert len(ids) == 150 and len(set(ids)) == 150
