"""The whole way through a bucket, as a user does it, each command a real process: a studio
folder of photos → `submit --upload s3://…` → `run --out s3://…` (the fake ChangeClothes
server fetching every input through the presigned URL `run` made when it claimed the job) →
`report` and `export`. A real S3-compatible server (moto on 127.0.0.1) behind a front that
refuses expired presigned URLs, as S3 and COS do."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from runner.fake import serve_fake
from runner.fake.config import FakeCredentials
from tests import s3_support
from tests.bucket_support import bucket_env, check_results, sheet_rows, signed_urls
from tests.cli_run import FAST, RunProcess, run_cli
from tests.run_support import all_jobs
from tests.s3_support import MotoServer, expiry_checking_front

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests" / "images"
BUCKET = "studio-catalog"
INPUTS, RESULTS = f"s3://{BUCKET}/in", f"s3://{BUCKET}/out"
TENCENT_KEY = "sk-EndToEnd4Bucket8Key2Never6Seen0Anywhere"
SECRETS = (TENCENT_KEY, s3_support.SECRET_KEY)
LOOKS = 6
TYPES = ("Upper-body", "Lower-body", "Dress")


def studio(tmp_path: Path) -> Path:
    """A studio folder: copies of the sample photos and a manifest naming them as local
    files (paths relative to the manifest's folder)."""
    folder = tmp_path / "studio"
    shutil.copytree(SAMPLES, folder / "images")
    with (folder / "spring.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for n in range(1, LOOKS + 1):
            out.writerow(
                [f"look-{n}", f"images/model-{n:02d}.jpg", f"images/clothes-{n:02d}.jpg"]
                + [TYPES[n % 3]]
            )
    return folder


async def test_studio_photos_through_a_bucket_to_results_in_the_bucket_and_a_report(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.make_bucket(BUCKET)
    folder = studio(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    db = str(tmp_path / "queue.db")
    outputs: list[str] = []
    creds = FakeCredentials("AKIDendToEnd00000000001", TENCENT_KEY)
    async with (
        expiry_checking_front(moto_server) as front,
        serve_fake(credentials=creds, concurrency=2, latency=0.05, seed=13) as server,
    ):
        env = bucket_env(home, server, moto_server)
        env["CHANGECLOTHES_S3_ENDPOINT"] = front.endpoint  # every bucket request via the front

        async def cli(*args: str, cwd: Path = tmp_path) -> RunProcess:
            done = await anyio.to_thread.run_sync(lambda: run_cli(["-vv", *args], env, cwd))
            outputs.extend([done.stdout, done.stderr])
            done.assert_no_traceback()
            return done

        submitted = await cli(
            "submit", "spring.csv", f"--db={db}", f"--upload={INPUTS}", cwd=folder
        )
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        assert f"{2 * LOOKS} uploaded" in submitted.stdout, submitted.stdout
        ran = await cli(
            "run",
            f"--db={db}",
            f"--out={RESULTS}",
            f"--endpoint={server.url}",
            "--concurrency=2",
            "--presign-ttl=10m",
            *FAST,
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        stats = server.stats()
        reported = await cli(
            "report", f"--db={db}", f"--out={RESULTS}", "--output=report.html", "--link-ttl=2h"
        )
        assert reported.returncode == 0, reported.stderr[-3000:]
        exported = await cli("export", f"--db={db}", "--output=export.csv")
        assert exported.returncode == 0, exported.stderr[-3000:]

    jobs = await all_jobs(db)
    assert len(jobs) == LOOKS and stats["calls"] == {"OK": LOOKS}

    # The inputs: recorded as objects of the bucket, fetched by the fake through presigned
    # URLs (the front counts them) that `run` made for 10 minutes.
    for job in jobs:
        assert job["model_url"].startswith(f"{INPUTS}/"), job["model_url"]
        assert job["clothes_url"].startswith(f"{INPUTS}/"), job["clothes_url"]
    assert (front.passed, front.refused) == (2 * LOOKS, 0)
    for call in stats["results"]:
        for url in (call["model_url"], call["clothes_url"]):
            assert url.startswith(f"{front.endpoint}/{BUCKET}/in/"), url
            assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["600"]

    # The results: every object where the database says, whole, decoded, its sha256 the
    # database's; each the very image the service produced; nothing else under the prefix.
    found = check_results(moto_server, BUCKET, jobs)
    assert set(moto_server.objects(BUCKET, "out/")) == set(found)
    assert set(found) == {f"out/spring/{j['external_id']}.jpg" for j in jobs}
    assert {j["sha256"] for j in jobs} == {call["sha256"] for call in stats["results"]}

    # The report: thumbnails of both photos and of the result (all read from the bucket),
    # each result linked by a presigned URL valid for 2 hours.
    html = (tmp_path / "report.html").read_text()
    [(rows, images)] = sheet_rows(html)
    assert len(rows) == LOOKS
    for row in rows:
        for kind in ("model", "clothes", "result"):
            assert row[kind] is not None, (row["id"], kind)
            assert images[row[kind]].startswith("data:image/"), (row["id"], kind)
        assert row["href"].startswith(f"{front.endpoint}/{BUCKET}/out/spring/{row['id']}.jpg?")
        query = parse_qs(urlsplit(row["href"]).query)
        assert query["X-Amz-Expires"] == ["7200"] and query["X-Amz-Signature"]
    assert len(signed_urls(html)) == LOOKS, "the links are the report's only signed material"

    # The export names the objects, never a link.
    with (tmp_path / "export.csv").open() as fh:
        exported_paths = {r["output_path"] for r in csv.DictReader(fh)}
    assert exported_paths == {f"s3://{BUCKET}/{key}" for key in found}

    # No secret anywhere the runner wrote (database, state folder, summary, report, export)
    # nor in any output, also at -vv; a signature only in the report's links. (moto's own
    # request log is the store's, not ours: it shows the URLs the fake fetched.)
    written = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "moto.log" and "images" not in p.parts
    ]
    assert Path(db) in written and any(p.name.startswith("run-") for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret[:6]}... in {path.name}"
        if path.name != "report.html":
            assert b"X-Amz-Signature" not in data, path.name
    for text in outputs:
        for secret in (*SECRETS, "X-Amz-Signature", "Signature="):
            assert secret not in text, f"{secret[:6]}... in the output"
    assert any("DEBUG" in text for text in outputs), "the logs searched were at debug level"
