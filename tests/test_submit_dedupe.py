"""Submitting: idempotence, batches that grow, and never paying twice for the same picture."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.store import JobState, Store
from runner.store.submit import submit_manifest
from tests.store_fixtures import job_rows, pairs, write_csv

pytestmark = pytest.mark.anyio
NOW = datetime(2025, 3, 1, tzinfo=UTC)
SAME = ["https://img.test/m/same.jpg", "https://img.test/c/same.jpg", "Dress"]


async def finish(store: Store, external_id: str) -> int:
    """Run one queued job to `done` as the scheduler would; its id."""
    while (job := await store.claim_next(NOW, "w")) is not None:
        if job.external_id == external_id:
            await store.mark_done(job.id, f"/out/{external_id}.jpg", "a" * 64, 999, "req")
            return job.id
        await store.release(job.id)
        raise AssertionError(f"claimed {job.external_id} before {external_id}")
    raise AssertionError("nothing to claim")


async def test_the_same_manifest_twice_queues_nothing_new(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "spring.csv", pairs(10))
    first = await submit_manifest(store, path)
    assert (first.batch, first.queued, first.new_batch, first.unchanged) == (
        "spring",
        10,
        True,
        False,
    )
    again = await submit_manifest(store, path)
    assert again.unchanged and again.new == 0
    assert len(await job_rows(store)) == 10


async def test_a_changed_manifest_adds_only_new_ids(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "spring.csv", pairs(5))
    await submit_manifest(store, path)
    changed = pairs(7)
    changed[0][3] = "Upper-body"  # r0 now says something else: left as it was
    write_csv(path, changed)
    result = await submit_manifest(store, path)
    assert (result.queued, result.already_present, result.changed_present, result.new_batch) == (
        2,
        5,
        1,
        False,
    )
    rows = await job_rows(store, "spring")
    assert [r["external_id"] for r in rows] == [f"r{i}" for i in range(7)]
    assert rows[0]["clothes_type"] == "Dress"


async def test_a_row_already_done_in_another_batch_is_linked_without_a_call(
    store: Store, tmp_path: Path
) -> None:
    await submit_manifest(store, write_csv(tmp_path / "old.csv", [["o1", *SAME]]))
    source = await finish(store, "o1")
    result = await submit_manifest(
        store, write_csv(tmp_path / "new.csv", [["n1", *SAME], *pairs(1)])
    )
    assert (result.queued, result.linked_done, result.linked_waiting) == (1, 1, 0)
    n1 = next(r for r in await job_rows(store, "new") if r["external_id"] == "n1")
    assert n1["state"] == JobState.DONE and n1["linked_job_id"] == source
    assert (n1["output_path"], n1["sha256"], n1["bytes"]) == ("/out/o1.jpg", "a" * 64, 999)
    summary = await store.event_summary()
    assert summary.linked == 1 and summary.paid_calls == 0
    job = await store.claim_next(NOW, "w")
    assert job is not None and job.external_id == "r0"  # only the new picture is claimed


async def test_force_generates_again(store: Store, tmp_path: Path) -> None:
    await submit_manifest(store, write_csv(tmp_path / "old.csv", [["o1", *SAME]]))
    await finish(store, "o1")
    result = await submit_manifest(
        store, write_csv(tmp_path / "new.csv", [["n1", *SAME], ["n2", *SAME]]), force=True
    )
    # Earlier results are not reused, but the two rows of this manifest still share one call.
    assert (result.queued, result.linked_done, result.linked_waiting) == (1, 0, 1)


async def test_a_row_in_flight_elsewhere_waits_for_it_and_follows_its_outcome(
    store: Store, tmp_path: Path
) -> None:
    await submit_manifest(
        store, write_csv(tmp_path / "a.csv", [["a1", *SAME], *pairs(1, prefix="a")])
    )
    result = await submit_manifest(store, write_csv(tmp_path / "b.csv", [["b1", *SAME]]))
    assert (result.queued, result.linked_waiting) == (0, 1)
    [b1] = await job_rows(store, "b")
    assert b1["state"] == JobState.LINKED
    assert await store.has_work("b")
    # Running only batch b still does the work b1 waits for.
    job = await store.claim_next(NOW, "w", batch="b")
    assert job is not None and job.external_id == "a1"
    await store.mark_generated(job.id, "https://r/1", NOW, "req")
    await store.mark_done(job.id, "/out/a1.jpg", "b" * 64, 77)
    [b1] = await job_rows(store, "b")
    assert (b1["state"], b1["output_path"], b1["bytes"]) == ("done", "/out/a1.jpg", 77)
    assert b1["finished_at"] is not None
    assert not await store.has_work("b")
    assert await store.claim_next(NOW, "w", batch="b") is None


async def test_linked_jobs_fail_with_their_source(store: Store, tmp_path: Path) -> None:
    await submit_manifest(store, write_csv(tmp_path / "a.csv", [["a1", *SAME], ["a2", *SAME]]))
    rows = await job_rows(store)
    assert [r["state"] for r in rows] == ["queued", "linked"]
    assert rows[1]["linked_job_id"] == rows[0]["id"]
    job = await store.claim_next(NOW, "w")
    assert job is not None
    await store.mark_failed(job.id, "FailedOperation.ImageDecodeFailed", "cannot decode")
    rows = await job_rows(store)
    assert [(r["state"], r["last_error_code"]) for r in rows] == [
        ("failed", "FailedOperation.ImageDecodeFailed"),
        ("failed", "FailedOperation.ImageDecodeFailed"),
    ]


async def test_copies_within_one_manifest_link_to_the_first_across_chunks(
    store: Store, tmp_path: Path
) -> None:
    rows = [[f"x{i}", *SAME] if i % 7 == 0 else p for i, p in enumerate(pairs(40))]
    result = await submit_manifest(store, write_csv(tmp_path / "m.csv", rows), chunk_rows=5)
    copies = len([i for i in range(40) if i % 7 == 0])
    assert (result.queued, result.linked_waiting) == (40 - copies + 1, copies - 1)
    jobs = {r["external_id"]: r for r in await job_rows(store)}
    assert jobs["x0"]["state"] == "queued"
    assert {jobs[f"x{i}"]["linked_job_id"] for i in range(7, 40, 7)} == {jobs["x0"]["id"]}


async def test_invalid_rows_queue_nothing_unless_skipped(store: Store, tmp_path: Path) -> None:
    rows = [*pairs(3), ["bad/id", "ftp://x", "https://x/c", "Dress"], *pairs(2, start=3)]
    path = write_csv(tmp_path / "m.csv", rows)
    refused = await submit_manifest(store, path)
    assert refused.refused and refused.invalid == 1 and refused.problems[0].line == 5
    assert await job_rows(store) == []
    assert await store.counts() == {}
    accepted = await submit_manifest(store, path, skip_invalid=True)
    assert (accepted.queued, accepted.invalid, accepted.skipped_invalid) == (5, 1, True)
    assert len(await job_rows(store)) == 5


async def test_an_error_while_inserting_leaves_nothing_half_queued(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.store import submit as submit_module

    path = write_csv(tmp_path / "m.csv", pairs(30))
    calls = 0
    original = submit_module.count_lines

    async def explode(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("power cut")
        return await original(*args)

    monkeypatch.setattr(submit_module, "count_lines", explode)
    with pytest.raises(RuntimeError, match="power cut"):
        await submit_manifest(store, path, chunk_rows=5)
    assert await job_rows(store) == []
    assert await store.counts() == {}
    monkeypatch.setattr(submit_module, "count_lines", original)
    result = await submit_manifest(store, path, chunk_rows=5)  # and it can be submitted again
    assert result.queued == 30


async def test_batch_names_default_to_the_file_stem_and_are_checked(
    store: Store, tmp_path: Path
) -> None:
    from runner.manifest import ManifestFormatError

    path = write_csv(tmp_path / "autumn.v2.csv", pairs(1))
    assert (await submit_manifest(store, path)).batch == "autumn.v2"
    assert (await submit_manifest(store, path, batch="other")).batch == "other"
    with pytest.raises(ManifestFormatError, match="batch name"):
        await submit_manifest(store, path, batch="../escape")
