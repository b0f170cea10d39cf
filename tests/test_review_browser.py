"""The review sheet in a real browser (Debian's headless Chromium driven by Playwright):
the rows are there, every thumbnail decodes, a filter hides the right rows. A screenshot is
kept as a test artefact."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.fake import serve_fake
from tests.run_support import all_jobs, run, submit

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DECODE = "FailedOperation.ImageDecodeFailed"
TYPES = ("Upper-body", "Lower-body", "Dress")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run does)"
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def night(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for n in range(9):
            model = f"images/model-{n % 6 + 1:02d}.jpg"
            clothes = f"images/clothes-{n + 1:02d}.jpg"
            writer.writerow([f"look-{n}", model, clothes, TYPES[n % 3]])
        writer.writerow(["broken", "images/model-01.jpg", "images/broken-01.jpg", "Dress"])
    return path


def test_review_sheet_in_headless_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    db, out = str(tmp_path / "q.db"), tmp_path / "out"

    async def night_run() -> None:
        async with serve_fake(seed=8) as server:
            await submit(db, night(tmp_path / "night.csv"), server.url + "/")
            assert (await run(db, server, out)).exit_code == 1
            # The report fetches the inputs (no --check-images was used) while the server is up.
            made = await anyio.to_thread.run_sync(
                lambda: invoke("report", "--db", db, "--out", str(out))
            )
            assert made.exit_code == 0, made.output

    anyio.run(night_run)
    jobs = anyio.run(all_jobs, db)
    failed = {j["external_id"] for j in jobs if j["state"] == "failed"}
    assert failed == {"broken"}
    report = out / "report.html"
    # Mailed alone: the sheet must not need the results folder for its thumbnails.
    mailed = tmp_path / "mailbox" / "report.html"
    mailed.parent.mkdir()
    shutil.copy(report, mailed)
    shot = tmp_path / "review-sheet.png"

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(mailed.as_uri())
            page.wait_for_function(
                "[...document.images].length > 0 && [...document.images].every(i => i.complete)"
            )
            rows = page.eval_on_selector_all(
                "table.sheet tbody tr", "rs => rs.map(r => [r.dataset.id, r.dataset.state])"
            )
            assert sorted(rows) == sorted([j["external_id"], j["state"]] for j in jobs)
            widths = page.eval_on_selector_all("img", "is => is.map(i => i.naturalWidth)")
            # Nine looks: model, garment, result each; the broken row: its model only (its
            # garment is no image, and it has no result).
            assert len(widths) == 9 * 3 + 1 and all(w > 0 for w in widths), widths
            page.screenshot(path=str(shot), full_page=True)

            page.select_option("section.review select.f-state", "failed")
            shown = page.eval_on_selector_all(
                "table.sheet tbody tr", "rs => rs.map(r => r.dataset.id)"
            )
            assert shown == ["broken"]
            text = page.inner_text("table.sheet tbody")
            assert DECODE in text and "fix the row" in text

            page.select_option("section.review select.f-state", "")
            page.select_option("section.review select.f-type", "Dress")
            dresses = page.eval_on_selector_all(
                "table.sheet tbody tr", "rs => rs.map(r => r.dataset.type)"
            )
            assert dresses and set(dresses) == {"Dress"}
            assert len(dresses) == sum(1 for j in jobs if j["clothes_type"] == "Dress")
        finally:
            browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests), "nothing from the network"
    print(f"\nreview sheet screenshot: {shot}")
