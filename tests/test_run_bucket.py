"""`run --out s3://BUCKET/PREFIX` end to end against a real S3-compatible server (moto on
127.0.0.1) and the fake API: every result lands in the bucket checked and recorded, the report
shows it, and no secret (nor any signed URL but the report's links) is left anywhere."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from runner.fake import serve_fake
from runner.fake.config import FakeCredentials
from runner.objects import BucketLocation
from runner.store import open_store
from tests import s3_support
from tests.bucket_support import bucket_env, check_results, sheet_rows, signed_urls
from tests.cli_run import (
    FAST,
    RunProcess,
    paid_calls_reported,
    run_cli,
    run_env,
    this_run_counts,
)
from tests.run_support import all_jobs, renamed_copy, run, submit, write_manifest
from tests.s3_support import MotoServer, write_refusing_front

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_manifests" / "catalog.csv"
BUCKET = "catalog-results"
OUT = f"s3://{BUCKET}/night"
TENCENT_KEY = "sk-Bucket7Test3Key9Never1Seen5Anywhere"
SECRETS = (TENCENT_KEY, s3_support.SECRET_KEY)


def _leaks(folder: Path, outputs: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{s[:6]}... in {path}" for s in SECRETS if s.encode() in data]
    for n, text in enumerate(outputs):
        found += [f"{s[:6]}... in output {n}" for s in SECRETS if s in text]
    return found


async def test_sample_catalog_to_a_bucket_then_report_export_status(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.make_bucket(BUCKET)
    db = str(tmp_path / "queue.db")
    home = tmp_path / "home"
    home.mkdir()
    manifest = tmp_path / "catalog.csv"
    shutil.copy(SAMPLE, manifest)
    outputs: list[str] = []
    creds = FakeCredentials("AKIDbucketTest0000000001", TENCENT_KEY)
    async with serve_fake(credentials=creds, concurrency=2, latency=0.05, seed=4) as server:
        env = bucket_env(home, server, moto_server)

        def cli(*args: str, environment: dict[str, str] = env) -> RunProcess:
            done = run_cli(["-vv", *args], environment, tmp_path)
            outputs.extend([done.stdout, done.stderr])
            done.assert_no_traceback()
            return done

        await submit(db, manifest, server.url + "/")
        ran = await anyio.to_thread.run_sync(
            lambda: cli(
                "run",
                f"--db={db}",
                f"--out={OUT}",
                f"--endpoint={server.url}",
                "--concurrency=2",
                *FAST,
            )  # fmt: skip
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        stats = server.stats()
        # The report (made while the fake still serves the input photos) embeds every
        # result's thumbnail and links it with a 3-hour presigned URL.
        reported = await anyio.to_thread.run_sync(
            lambda: cli("report", f"--db={db}", f"--out={OUT}", "--link-ttl=3h")
        )
    jobs = await all_jobs(db)
    count = len(jobs)
    assert count == 14
    assert stats["calls"] == {"OK": count}
    assert f"results to {OUT}" in ran.stderr

    # Every result object: where the database says, whole, decoded, its sha256 recorded.
    found = check_results(moto_server, BUCKET, jobs)
    assert set(moto_server.objects(BUCKET)) == set(found)
    assert set(found) == {f"night/catalog/{j['external_id']}.jpg" for j in jobs}
    assert {j["sha256"] for j in jobs} <= {d["sha256"] for d in stats["downloads"]}
    # The journal and the summary stayed on local disk, beside the queue.
    state = tmp_path / "queue.state"
    assert list(state.glob("run-*.json")), "the run summary, in the state folder"
    assert not list(state.glob(".changeclothes-*")), "no journal or temporary file left"

    # The report: thumbnails of inputs and results, presigned links for 3 hours.
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert "valid until" in reported.stdout
    html = (tmp_path / "report.html").read_text()
    [(rows, images)] = sheet_rows(html)
    assert len(rows) == count
    for row in rows:
        assert row["result"] is not None, (row, reported.stdout, reported.stderr[-3000:])
        assert images[row["result"]].startswith("data:image/")
        assert row["href"].startswith(moto_server.endpoint + f"/{BUCKET}/night/catalog/")
        assert "X-Amz-Expires=10800" in row["href"] and "X-Amz-Signature=" in row["href"]
        assert row["model"] is not None and row["clothes"] is not None
    links = signed_urls(html)
    assert len(links) == count and all("X-Amz-Expires=10800" in u for u in links)

    # The export names the objects; links only when asked.
    exported = cli("export", f"--db={db}", "--output=export.csv")
    assert exported.returncode == 0
    with (tmp_path / "export.csv").open() as fh:
        paths = {r["output_path"] for r in csv.DictReader(fh)}
    assert paths == {f"s3://{BUCKET}/{key}" for key in found}
    assert not signed_urls((tmp_path / "export.csv").read_text())
    linked = cli("export", f"--db={db}", "--output=links.jsonl", "--result-links", "--link-ttl=1h")
    assert linked.returncode == 0, linked.stderr[-2000:]
    lines = [json.loads(x) for x in (tmp_path / "links.jsonl").read_text().splitlines()]
    assert all("X-Amz-Expires=3600" in x["result_link"] for x in lines)

    # status reads only the database: no bucket settings, no AWS keys needed.
    bare = {k: v for k, v in env.items() if not k.startswith(("AWS_", "CHANGECLOTHES_S3"))}
    status = cli("status", f"--db={db}", "--json", environment=bare)
    assert status.returncode == 0
    assert json.loads(status.stdout)["total"]["done"] == count

    # No secret anywhere; signed URLs only in the report and the export that asked for them.
    assert not _leaks(tmp_path, outputs)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in ("report.html", "links.jsonl"):
            assert b"X-Amz-Signature" not in path.read_bytes(), path
    assert not any(signed_urls(text) for text in outputs), "a signed URL in the output"
    assert not any("Signature" in text for text in outputs), "signed material in a log"
    assert any("DEBUG" in text for text in outputs), "the logs searched were at debug level"


def bucket_run(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """An in-process run's settings for results in BUCKET (made), the store's keys set."""
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    moto_server.make_bucket(BUCKET)
    return {
        "bucket": BucketLocation.parse(OUT),
        "object_store": moto_server.config,
        "state_dir": tmp_path / "state",
    }


async def test_a_rerun_finds_a_stored_result_and_neither_downloads_nor_pays(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner killed after the upload and before the record: the rerun finds the object of
    that very paid call (its request id in the metadata) and records it."""
    overrides = bucket_run(tmp_path, moto_server, monkeypatch)
    db = str(tmp_path / "queue.db")
    async with serve_fake(concurrency=1, seed=5) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 3), server.url + "/")
        first = await run(db, server, tmp_path / "state", **overrides)
        assert first.exit_code == 0
        paid, downloads = server.stats()["calls"]["OK"], len(server.stats()["downloads"])
        before = (await all_jobs(db))[1]
        # As a kill leaves it: generated, its URL now unusable, its runner gone.
        store = await open_store(db)
        try:
            async with store.transaction() as conn:
                await conn.execute(
                    sa.text(
                        "UPDATE jobs SET state='generated', claimed_by='gone-runner', "
                        "result_url='http://127.0.0.1:9/never', output_path=NULL, sha256=NULL "
                        "WHERE id=:id"
                    ),
                    {"id": before["id"]},
                )
        finally:
            await store.close()
        again = await run(db, server, tmp_path / "state", **overrides)
        stats = server.stats()
    assert again.exit_code == 0
    assert stats["calls"]["OK"] == paid, "paid again for a result the bucket holds"
    assert len(stats["downloads"]) == downloads, "downloaded again"
    after = (await all_jobs(db))[1]
    assert (after["state"], after["output_path"], after["sha256"]) == (
        "done",
        before["output_path"],
        before["sha256"],
    )
    assert len(moto_server.objects(BUCKET)) == 3


async def test_a_bucket_refusing_a_paid_base64_result_halts_with_the_call_on_record(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    """A base64 result is paid for before it is uploaded: the bucket refusing it (after it
    took the first) halts the run with exit 5, the call is on record and counted as a
    regeneration, and a rerun once the bucket takes writes again finishes every job."""
    jobs_count, concurrency = 5, 2
    moto_server.make_bucket(BUCKET)
    db = str(tmp_path / "queue.db")
    home = tmp_path / "home"
    home.mkdir()
    creds = FakeCredentials("AKIDbucketRefuses000001", TENCENT_KEY)
    async with (
        write_refusing_front(moto_server, f"/{BUCKET}/night/", accept=1) as front,
        serve_fake(credentials=creds, concurrency=concurrency, latency=0.05, seed=6) as server,
    ):
        env = bucket_env(home, server, moto_server)
        env["CHANGECLOTHES_S3_ENDPOINT"] = front.endpoint
        await submit(db, write_manifest(tmp_path / "m.csv", jobs_count), server.url + "/")
        args = [
            "run",
            f"--db={db}",
            f"--out={OUT}",
            f"--endpoint={server.url}",
            f"--concurrency={concurrency}",
            "--rsp-img-type=base64",
            *FAST,
        ]
        first = await anyio.to_thread.run_sync(lambda: run_cli(args, env, tmp_path))
        assert first.returncode == 5, f"{first.stdout}\n{first.stderr[-3000:]}"
        first.assert_no_traceback()
        halted = [line for line in first.stdout.splitlines() if line.startswith("Halted")]
        assert len(halted) == 1 and BUCKET in halted[0], first.stdout + first.stderr[-3000:]
        assert front.refused >= 1
        jobs = await all_jobs(db)
        done = sum(j["state"] == "done" for j in jobs)
        regenerated = sum(j["regenerations"] for j in jobs)
        assert regenerated >= 1, "the refused result is generated again"
        paid = server.stats()["calls"].get("OK", 0)
        assert paid == done + regenerated, (paid, done, regenerated)
        assert this_run_counts(first.stdout) == (paid, regenerated), first.stdout
        reported = await anyio.to_thread.run_sync(lambda: paid_calls_reported(db, env, tmp_path))
        assert reported == paid, "every paid call is on record"

        front.accept = None  # the bucket takes writes again
        rerun = await anyio.to_thread.run_sync(lambda: run_cli(args, env, tmp_path))
        assert rerun.returncode == 0, f"{rerun.stdout}\n{rerun.stderr[-3000:]}"
        rerun.assert_no_traceback()
        paid = server.stats()["calls"].get("OK", 0)
    jobs = await all_jobs(db)
    check_results(moto_server, BUCKET, jobs)  # every job done, its object whole
    assert len(jobs) == jobs_count
    assert paid <= jobs_count + concurrency, f"{paid} paid calls for {jobs_count} jobs"


async def test_identical_rows_get_their_own_object_by_a_copy_in_the_bucket(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = bucket_run(tmp_path, moto_server, monkeypatch)
    db = str(tmp_path / "queue.db")
    first = write_manifest(tmp_path / "monday.csv", 3)
    async with serve_fake(seed=2) as server:
        base = server.url + "/"
        await submit(db, first, base)
        assert (await run(db, server, tmp_path / "state", **overrides)).exit_code == 0
        # The same pairs again: one batch identical to finished jobs, one to queued ones.
        await submit(db, renamed_copy(first, tmp_path / "tuesday.csv", "again-"), base)
        await submit(db, write_manifest(tmp_path / "extra.csv", 5), base)
        await submit(db, renamed_copy(tmp_path / "extra.csv", tmp_path / "wed.csv", "w-"), base)
        assert (await run(db, server, tmp_path / "state", **overrides)).exit_code == 0
        paid = server.stats()["calls"]["OK"]
    assert paid == 3 + 2, "only the two new pairs of extra.csv were paid for"
    jobs = await all_jobs(db)
    found = check_results(moto_server, BUCKET, jobs)
    batches = {1: "monday", 2: "tuesday", 3: "extra", 4: "wed"}
    assert set(found) == {f"night/{batches[j['batch_id']]}/{j['external_id']}.jpg" for j in jobs}
    assert set(moto_server.objects(BUCKET)) == set(found)
    copies = [r for r in moto_server.requests() if r[0] == "PUT"]
    assert len(copies) == len(jobs) + 1, "one upload or server-side copy per object (+ bucket)"


async def test_a_missing_bucket_stops_the_run_before_any_call(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    db = str(tmp_path / "queue.db")
    home = tmp_path / "home"
    home.mkdir()
    async with serve_fake(seed=3) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 2), server.url + "/")
        env = bucket_env(home, server, moto_server)
        ran = await anyio.to_thread.run_sync(
            lambda: run_cli(
                ["run", f"--db={db}", "--out=s3://no-such-bucket/x", f"--endpoint={server.url}"],
                env,
                tmp_path,
            )
        )
        calls = server.stats()["calls"]
    assert ran.returncode == 5, ran.stderr[-2000:]
    assert "s3://no-such-bucket: NoSuchBucket: the bucket does not exist" in ran.stderr
    ran.assert_no_traceback()
    assert "botocore" not in ran.stderr, "the client library's chatter stays off the screen"
    assert not calls, "a call was paid for with nowhere to keep its result"
    assert {j["state"] for j in await all_jobs(db)} == {"queued"}


async def test_state_dir_keeps_the_summary_apart_from_a_results_folder(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    home = tmp_path / "home"
    home.mkdir()
    async with serve_fake(seed=6) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 2), server.url + "/")
        creds = server.credentials
        env = run_env(home, creds.secret_id, creds.secret_key)
        ran = await anyio.to_thread.run_sync(
            lambda: run_cli(
                ["run", f"--db={db}", "--out=out", "--state-dir=state", f"--endpoint={server.url}"],
                env,
                tmp_path,
            )
        )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out" / "m").iterdir()) == [
        "job-0000.jpg",
        "job-0001.jpg",
    ]
    assert list((tmp_path / "state").glob("run-*.json")) and not list(
        (tmp_path / "out").glob("run-*.json")
    )
