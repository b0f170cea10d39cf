"""Each class of error does to the job what the error table says, in a real run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from runner.fake import serve_fake
from runner.scheduler.policy import RetryPolicy
from tests.run_support import all_jobs, run, submit, write_manifest

pytestmark = pytest.mark.anyio


def _bad_rows_manifest(path: Path) -> Path:
    rows = [
        ("good-1", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body"),
        ("undecodable", "images/model-02.jpg", "images/broken-01.jpg", "Upper-body"),
        ("too-small", "images/tiny-01.jpg", "images/clothes-02.jpg", "Dress"),
        ("good-2", "images/model-03.jpg", "images/clothes-05.jpg", "Lower-body"),
    ]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        writer.writerows(rows)
    return path


async def test_bad_rows_fail_with_the_service_code_and_the_rest_goes_on(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=1) as server:
        await submit(db, _bad_rows_manifest(tmp_path / "m.csv"), server.url + "/")
        result = await run(db, server, tmp_path / "out")
    assert result.exit_code == 1
    jobs = {j["external_id"]: j for j in await all_jobs(db)}
    assert jobs["good-1"]["state"] == jobs["good-2"]["state"] == "done"
    assert jobs["undecodable"]["state"] == "failed"
    assert jobs["undecodable"]["last_error_code"] == "FailedOperation.ImageDecodeFailed"
    assert jobs["too-small"]["last_error_code"] == "FailedOperation.ImageResolutionExceed"
    assert jobs["too-small"]["last_error_message"]
    assert jobs["too-small"]["attempts"] == 0, "a bad row is not retried"


async def test_transient_errors_are_retried_and_charged(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(faults={"FailedOperation.InnerError": 0.4}, seed=2) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 15), server.url + "/")
        result = await run(db, server, tmp_path / "out", retry=_policy(12))
        calls = server.stats()["calls"]
    assert result.exit_code == 0
    jobs = await all_jobs(db)
    assert [j["state"] for j in jobs] == ["done"] * 15
    assert calls["FailedOperation.InnerError"] >= 3
    assert sum(j["attempts"] for j in jobs) == calls["FailedOperation.InnerError"]


async def test_transient_errors_fail_the_job_after_max_attempts(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(faults={"FailedOperation.RpcFail": 1.0}, seed=2) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        result = await run(db, server, tmp_path / "out", retry=_policy(3))
        calls = server.stats()["calls"]
    assert result.exit_code == 1
    assert calls == {"FailedOperation.RpcFail": 9}, "three tries per job, no more"
    jobs = await all_jobs(db)
    assert {(j["state"], j["last_error_code"], j["attempts"]) for j in jobs} == {
        ("failed", "FailedOperation.RpcFail", 3)
    }


def _policy(max_attempts: int) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, retry_delay=0.01, retry_delay_cap=0.05)


async def test_halting_code_stops_the_run_and_a_rerun_finishes(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(account_state="arrears", seed=3) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 5), server.url + "/")
        halted = await run(db, server, tmp_path / "out", concurrency=2)
        assert halted.exit_code == 3
        assert halted.halt is not None and halted.halt.code == "ResourceUnavailable.InArrears"
        jobs = await all_jobs(db)
        assert {j["state"] for j in jobs} == {"queued"}, "nothing failed, nothing lost"
        assert all(j["attempts"] == 0 for j in jobs)
        assert server.stats()["calls"]["ResourceUnavailable.InArrears"] <= 2, "stopped at once"

        server.set_account_state("ok")
        resumed = await run(db, server, tmp_path / "out", concurrency=2)
    assert resumed.exit_code == 0
    assert {j["state"] for j in await all_jobs(db)} == {"done"}


async def test_base64_results_are_written_at_once(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(seed=4) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 4), server.url + "/")
        result = await run(db, server, tmp_path / "out", rsp_img_type="base64")
        stats = server.stats()
    assert result.exit_code == 0
    assert stats["downloads"] == [], "base64 needs no download"
    assert {r["rsp_img_type"] for r in stats["results"]} == {"base64"}
    served = {r["sha256"] for r in stats["results"]}
    jobs = await all_jobs(db)
    assert {j["sha256"] for j in jobs} == served
    assert all(Path(j["output_path"]).is_file() for j in jobs)


@pytest.mark.timing
async def test_service_still_activating_pauses_then_halts_after_the_bound(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    async with serve_fake(faults={"ResourceUnavailable.Delivering": 1.0}, seed=5) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        result = await run(db, server, tmp_path / "out", activation_pause=0.2, activation_limit=0.7)
        calls = server.stats()["calls"]["ResourceUnavailable.Delivering"]
    assert result.exit_code == 3
    assert result.halt is not None and result.halt.code == "ResourceUnavailable.Delivering"
    assert 3 <= calls <= 6, "paused between tries, neither hammering nor giving up at once"
    jobs = await all_jobs(db)
    assert {(j["state"], j["attempts"]) for j in jobs} == {("queued", 0)}
