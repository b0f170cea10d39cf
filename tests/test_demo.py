"""`make demo` runs `changeclothes demo`: one image per sample row, and twice in a row."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from runner.demo import SAMPLE_MANIFEST


def _demo(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "demo", "--workdir", str(workdir), "--latency", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)},  # no credentials, no settings
    )


def test_demo_writes_one_image_per_sample_row_and_reruns_cleanly(tmp_path: Path) -> None:
    with SAMPLE_MANIFEST.open(newline="") as fh:
        ids = sorted(row["id"] for row in csv.DictReader(fh))
    assert len(ids) >= 12

    first = _demo(tmp_path / "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    images = sorted((tmp_path / "demo" / "results" / "catalog").iterdir())
    report = (tmp_path / "demo" / "results" / "report.html").read_text()
    assert all(f"catalog/{i}.jpg" in report for i in ids), "the report shows every result"
    # ... beside its model and garment, fetched from the local service while it runs.
    assert len(re.findall(r'"model":\d+', report)) == len(ids), "every model thumbnail"
    assert len(re.findall(r'"clothes":\d+', report)) == len(ids), "every garment thumbnail"
    assert [p.stem for p in images] == ids
    for path in images:
        with Image.open(path) as image:
            assert image.size == (768, 1024)

    second = _demo(tmp_path / "demo")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already submitted" in second.stdout
    assert "0 paid calls" in second.stdout
    assert sorted((tmp_path / "demo" / "results" / "catalog").iterdir()) == images
