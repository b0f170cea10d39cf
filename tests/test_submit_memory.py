"""A 200,000-row manifest: all queued, idempotent on resubmit, in flat memory (< 150 MB)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROWS = 200_000
LIMIT_MB = 150

# Runs `changeclothes submit` (as `python -m runner`) as its own child and reports that
# child's peak RSS, so nothing else this test process did is counted.
MEASURE = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "runner", *sys.argv[1:]],
                          capture_output=True, text=True)
    print(json.dumps({
        "rc": done.returncode, "out": done.stdout, "err": done.stderr,
        "seconds": time.monotonic() - start,
        "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))
    """
)


def write_manifest(path: Path, rows: int) -> Path:
    kinds = ["Upper-body", "lower body", "DRESS"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for i in range(rows):
            writer.writerow(
                [
                    f"sku-{i:07d}",
                    f"https://cdn.test/models/m{i % 5000}.jpg",
                    f"https://cdn.test/clothes/c{i}.jpg",
                    kinds[i % 3],
                ]
            )
    return path


def measure(*args: str | Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    return json.loads(out.stdout)


@pytest.mark.timing  # and its own share of memory and CPU: it runs alone
def test_200k_rows_submit_in_flat_memory_and_resubmit_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    small = measure(
        "submit", write_manifest(tmp_path / "small.csv", 20_000), "--db", tmp_path / "s.db"
    )
    big_path = write_manifest(tmp_path / "night.csv", ROWS)
    started = time.monotonic()
    big = measure("submit", big_path, "--db", db)
    assert big["rc"] == 0, big["err"]
    assert f"{ROWS} valid rows into new batch 'night'" in str(big["out"])
    assert f"New jobs: {ROWS} queued." in str(big["out"])
    print(
        f"\n200k submit: {big['seconds']:.1f} s, peak RSS {big['peak_mb']:.0f} MB "
        f"(20k: {small['peak_mb']:.0f} MB)"
    )
    assert float(big["peak_mb"]) < LIMIT_MB  # type: ignore[arg-type]
    # Ten times the rows, about the same memory: nothing grows with the file.
    assert float(big["peak_mb"]) - float(small["peak_mb"]) < 25  # type: ignore[arg-type]
    assert time.monotonic() - started < 60

    again = measure("submit", big_path, "--db", db)
    assert again["rc"] == 0 and "nothing new queued" in str(again["out"])
    status = measure("status", "--db", db, "--json")
    data = json.loads(str(status["out"]))
    assert data["batches"] == [
        {
            "batch": "night",
            "queued": ROWS,
            "submitting": 0,
            "generated": 0,
            "linked": 0,
            "done": 0,
            "failed": 0,
            "cancelled": 0,
            "total": ROWS,
        }
    ]
    assert float(status["seconds"]) < 10  # type: ignore[arg-type]
