"""The review sheet at scale: size and time of `report` for N done jobs (default 10,000),
each with its own garment image and result file, six models. Not part of `make bench`:

    python bench/report_sheet_size.py [N]

The inputs' verdicts are put in the preflight's cache directly (no server needed); the
results are copies of the sample models under distinct names, so each is a thumbnail of its
own. Prints the report's size and the time `report_data` + `write_report` took.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import sys
import time
from pathlib import Path

import common
import sqlalchemy as sa

from runner.preflight import inspect_image
from runner.report import write_report
from runner.samples import SAMPLE_IMAGES
from runner.store import open_store
from runner.store.images import save_checks
from runner.store.models import jobs
from runner.store.reports import report_data
from runner.store.submit import submit_manifest

BASE = "http://127.0.0.1:9/"


async def main(n: int) -> None:
    work = common.WORK / "report_sheet"
    shutil.rmtree(work, ignore_errors=True)
    out = work / "out" / "big"
    out.mkdir(parents=True)
    samples = Path(str(SAMPLE_IMAGES))
    models = sorted(samples.glob("model-*.jpg"))
    clothes = sorted(samples.glob("clothes-*.jpg"))
    manifest = work / "big.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for i in range(n):
            model = f"{BASE}{models[i % 6].name}"
            writer.writerow([f"j{i:05d}", model, f"{BASE}g/{i}.jpg", "Dress"])
            shutil.copy(models[i % 6], out / f"j{i:05d}.jpg")
    store = await open_store(str(work / "q.db"))
    try:
        await submit_manifest(store, manifest)
        async with store.transaction() as conn:
            path = sa.literal(f"{out}/") + jobs.c.external_id + ".jpg"
            await conn.execute(sa.update(jobs).values(state="done", output_path=path))
        checks = [inspect_image(f"{BASE}g/{i}.jpg", clothes[i % 12].read_bytes()) for i in range(n)]
        checks += [inspect_image(f"{BASE}{m.name}", m.read_bytes()) for m in models]
        await save_checks(store, checks)
        started = time.monotonic()
        data = await report_data(store)
        report = write_report(data, work / "out" / "report.html", work / "out")
        took = time.monotonic() - started
    finally:
        await store.close()
    size = report.stat().st_size
    print(f"{n} jobs: report {size / 1e6:.1f} MB ({size / n / 1e3:.1f} KB a job) in {took:.0f} s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
