"""Image preflight: `validate` and `submit --check-images` fetch every input before a night
is spent on it, name each refused row by line and id, and never call the API."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from runner.cli import cli
from runner.fake import serve_fake
from runner.samples import SAMPLE_IMAGES
from tests.run_support import all_jobs

pytestmark = pytest.mark.anyio


async def invoke(*args: str) -> Result:
    """The CLI runs its own event loop: call it from a worker thread."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


def images(folder: Path) -> Path:
    folder.mkdir()
    for name in ("model-01.jpg", "clothes-01.jpg", "clothes-02.jpg", "tiny-01.jpg"):
        shutil.copy(Path(str(SAMPLE_IMAGES)) / name, folder / name)
    Image.new("RGB", (3200, 800), (90, 90, 90)).save(folder / "wide.jpg", "JPEG")
    (folder / "notes.jpg").write_text("this is not a picture\n")
    return folder


GOOD = ("good", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body")
BAD = [
    ("missing", "images/gone.jpg", "images/clothes-01.jpg", "Upper-body"),
    ("tiny", "images/model-01.jpg", "images/tiny-01.jpg", "Dress"),
    ("too-wide", "images/wide.jpg", "images/clothes-02.jpg", "Lower-body"),
    ("not-image", "images/model-01.jpg", "images/notes.jpg", "Upper-body"),
]


def manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        writer.writerows(rows)
    return path


async def test_validate_names_each_refused_row_and_calls_no_api(tmp_path: Path) -> None:
    async with serve_fake(images_dir=images(tmp_path / "images")) as server:
        base = server.url + "/"
        bad = await invoke(
            "validate", str(manifest(tmp_path / "bad.csv", [GOOD, *BAD])), "--base-url", base
        )
        good = await invoke(
            "validate", str(manifest(tmp_path / "good.csv", [GOOD])), "--base-url", base
        )
        stats = server.stats()
    assert bad.exit_code == 1, bad.output
    lines = {line.strip().split(":")[0]: line for line in bad.stderr.splitlines()[1:]}
    assert set(lines) == {
        "line 3 (id missing)",
        "line 4 (id tiny)",
        "line 5 (id too-wide)",
        "line 6 (id not-image)",
    }, bad.stderr
    assert "unreachable (HTTP 404)" in lines["line 3 (id missing)"]
    assert "480x640 px" in lines["line 4 (id tiny)"]
    assert "3200x800 px" in lines["line 5 (id too-wide)"]
    assert "not an image" in lines["line 6 (id not-image)"]
    assert "4 of 5 rows" in bad.stderr
    assert good.exit_code == 0, good.output
    assert "all 2 input images fetched and acceptable" in good.stdout
    assert not stats["calls"], "the preflight made an API call"


async def test_submit_check_images_queues_nothing_then_skips_and_records(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "q.db")
    path = manifest(tmp_path / "night.csv", [GOOD, *BAD])
    async with serve_fake(images_dir=images(tmp_path / "images")) as server:
        base = server.url + "/"
        refused = await invoke(
            "submit", str(path), "--db", db, "--base-url", base, "--check-images"
        )
        assert refused.exit_code == 1, refused.output
        assert "nothing was queued" in refused.stderr and "line 5 (id too-wide)" in refused.stderr
        assert await all_jobs(db) == []
        skipped = await invoke(
            "submit", str(path), "--db", db, "--base-url", base, "--check-images", "--skip-invalid"
        )
        # The cache: the verdicts of the first check are reused, nothing fetched again.
        again = await invoke("validate", str(path), "--db", db, "--base-url", base)
        stats = server.stats()
    assert skipped.exit_code == 0, skipped.output
    assert [j["external_id"] for j in await all_jobs(db)] == ["good"]
    assert "Skipped 4 invalid rows" in skipped.stderr
    assert "7 images checked, 6 from the cache" in again.stderr, again.output
    assert not stats["calls"]
    status = await invoke("status", "--db", db)
    assert "4 invalid rows" in status.output and "line 4 (id tiny)" in status.output
    as_json = json.loads((await invoke("status", "--db", db, "--json")).output)
    assert [(r["line"], r["id"]) for r in as_json["invalid_rows"]] == [
        (3, "missing"),
        (4, "tiny"),
        (5, "too-wide"),
        (6, "not-image"),
    ]
