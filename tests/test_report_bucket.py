"""The report on inputs and results kept in a bucket: thumbnails read from the bucket when the
report is made, presigned links with the stated lifetime, and a bucket that cannot be read
costs thumbnails, never the report."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from runner.cli import cli
from runner.samples import SAMPLE_IMAGES
from runner.store import open_store
from tests.bucket_support import sheet_rows, signed_urls
from tests.run_support import submit as submit_manifest
from tests.run_support import write_manifest
from tests.s3_support import MotoServer

BUCKET = "studio-photos"


async def _seed(db: str, tmp_path: Path, moto: MotoServer) -> list[str]:
    """Two jobs whose photos are `s3://` references (as `submit --upload` records them) and
    the first of them done, its result an object in the bucket. Returns the references."""
    await submit_manifest(db, write_manifest(tmp_path / "m.csv", 2), "http://127.0.0.1:9/")
    client = moto.boto()
    refs = []
    for name in ("model-01.jpg", "clothes-01.jpg", "model-02.jpg"):
        data = (SAMPLE_IMAGES / name).read_bytes()
        key = f"in/{hashlib.sha256(data).hexdigest()}.jpg"
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
        refs.append(f"s3://{BUCKET}/{key}")
    result = (SAMPLE_IMAGES / "model-02.jpg").read_bytes()
    client.put_object(Bucket=BUCKET, Key="out/m/job-0000.jpg", Body=result)
    store = await open_store(db)
    try:
        async with store.transaction() as conn:
            await conn.execute(
                sa.text("UPDATE jobs SET model_url=:m, clothes_url=:c"),
                {"m": refs[0], "c": refs[1]},
            )
            await conn.execute(
                sa.text(
                    "UPDATE jobs SET state='done', output_path=:p, sha256=:s "
                    "WHERE external_id='job-0000'"
                ),
                {"p": f"s3://{BUCKET}/out/m/job-0000.jpg", "s": hashlib.sha256(result).hexdigest()},
            )
    finally:
        await store.close()
    return refs


def test_report_reads_inputs_and_results_from_the_bucket(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.make_bucket(BUCKET)
    db = str(tmp_path / "queue.db")
    anyio.run(_seed, db, tmp_path, moto_server)
    report = tmp_path / "r.html"
    env = moto_server.env({})
    result = CliRunner().invoke(
        cli, ["report", f"--db={db}", f"--output={report}", "--link-ttl=90m"], env=env
    )
    assert result.exit_code == 0, result.output
    [(rows, images)] = sheet_rows(report.read_text())
    by_id = {r["id"]: r for r in rows}
    done, queued = by_id["job-0000"], by_id["job-0001"]
    for row in (done, queued):
        assert row["model"] is not None and row["clothes"] is not None, "input thumbnails"
    assert done["result"] is not None and images[done["result"]].startswith("data:image/webp")
    assert "X-Amz-Expires=5400" in done["href"]
    assert queued["result"] is None and queued["href"] is None
    html = report.read_text()
    assert len(signed_urls(html)) == 1, "the only signed material"
    assert done["href"].rpartition("X-Amz-Signature=")[2] in signed_urls(html)[0]

    # The object goes: the report still comes, the result flagged, one warning said why.
    moto_server.boto().delete_object(Bucket=BUCKET, Key="out/m/job-0000.jpg")
    again = CliRunner().invoke(cli, ["report", f"--db={db}", f"--output={report}"], env=env)
    assert again.exit_code == 0, again.output
    assert "1 bucket reads failed" in again.output and "no such object" in again.output
    [(rows, _)] = sheet_rows(report.read_text())
    assert rows[0]["missing"] is True and rows[0]["result"] is None
    assert "Traceback" not in again.output


def test_export_refuses_links_for_a_manifest_and_status_needs_no_bucket(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    anyio.run(submit_manifest, db, write_manifest(tmp_path / "m.csv", 1), "http://127.0.0.1:9/")
    runner = CliRunner()
    refused = runner.invoke(cli, ["export", f"--db={db}", "--as-manifest", "--result-links"])
    assert refused.exit_code == 2 and "--result-links" in refused.output
    too_long = runner.invoke(cli, ["report", f"--db={db}", "--link-ttl=8d"])
    assert too_long.exit_code == 2 and "7 days" in too_long.output


@pytest.mark.parametrize("out", ["s3://UPPER/x", "s3://b/../x"])
def test_a_malformed_bucket_out_is_a_usage_error(tmp_path: Path, out: str) -> None:
    db = str(tmp_path / "queue.db")
    anyio.run(submit_manifest, db, write_manifest(tmp_path / "m.csv", 1), "http://127.0.0.1:9/")
    result = CliRunner().invoke(
        cli,
        ["run", f"--db={db}", f"--out={out}"],
        env={"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "k" * 20},
    )
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
