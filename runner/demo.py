"""The demo: the local fake service, the sample catalog, a full run, all on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
from rich.console import Console

from runner.api.client import Timeouts
from runner.credentials import Credentials
from runner.execute import execute_run
from runner.fake import FakeConfig, FakeCredentials, serve_fake
from runner.preflight import add_input_thumbnails
from runner.report import write_report
from runner.samples import SAMPLE_IMAGES, SAMPLE_MANIFEST
from runner.scheduler.run import RunResult, RunSettings
from runner.store import open_store
from runner.store.reports import report_data
from runner.store.submit import SubmitResult, submit_manifest


def images_for(manifest: Path) -> Path:
    """What the local service serves under /images/: the manifest's own `images/` folder
    beside it when there is one, else the sample images."""
    beside = manifest.parent / "images"
    return beside if beside.is_dir() else SAMPLE_IMAGES


@dataclass(frozen=True)
class DemoResult:
    submitted: SubmitResult
    run: RunResult
    db: str
    results_dir: Path
    report: Path


async def run_demo(
    workdir: Path,
    manifest: Path = SAMPLE_MANIFEST,
    concurrency: int = 1,
    latency: float = 0.3,
    console: Console | None = None,
) -> DemoResult:
    """Serve the fake, submit `manifest` with the fake's root as base URL, run to the end."""
    await anyio.Path(workdir).mkdir(parents=True, exist_ok=True)
    db = str(workdir / "changeclothes.db")
    out = workdir / "results"
    demo = FakeCredentials.demo()
    config = FakeConfig(
        concurrency=concurrency,
        latency=latency,
        latency_dist="uniform",
        seed=1,
        credentials=demo,
        images_dir=images_for(manifest),
    )
    async with serve_fake(config) as server:
        store = await open_store(db)
        try:
            # The manifest's relative paths (images/model-01.jpg) resolve against the fake's
            # root, the way a catalog on a CDN resolves against its folder.
            submitted = await submit_manifest(store, manifest, base_url=server.url + "/")
        finally:
            await store.close()
        if console is not None:
            console.print(
                f"Local ChangeClothes service at {server.url} (demo credentials); "
                f"{_describe(submitted)}"
            )
        result = await execute_run(
            db,
            Credentials(demo.secret_id, demo.secret_key, source="demo"),
            server.url,
            "ap-singapore",
            RunSettings(out_dir=out, concurrency=concurrency, handle_signals=False),
            Timeouts(),
            console,
        )
        store = await open_store(db)
        try:  # while the local service still serves the inputs the sheet shows
            data = await report_data(store, submitted.batch)
            await add_input_thumbnails(store, data)
        finally:
            await store.close()
    report = await anyio.to_thread.run_sync(write_report, data, out / "report.html", out)
    return DemoResult(submitted, result, db, out, report)


def _describe(submitted: SubmitResult) -> str:
    if submitted.unchanged:
        return f"batch {submitted.batch!r} was already submitted: nothing new to queue."
    return f"queued {submitted.new} jobs in batch {submitted.batch!r}."
