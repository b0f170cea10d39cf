"""`submit -` and `validate -` read a piped manifest; the file and the pipe agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CSV = (
    "id,model_url,clothes_url,clothes_type\n"
    "a,https://example.com/m.jpg,https://example.com/c.jpg,Dress\n"
    "b,https://example.com/m2.jpg,https://example.com/c.jpg,Upper-body\n"
)
JSONL = (
    '{"id": "c", "model_url": "https://example.com/m.jpg",'
    ' "clothes_url": "https://example.com/c.jpg", "clothes_type": "Dress"}\n'
)


def _cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )


def test_submit_dash_queues_csv_then_jsonl_from_stdin(tmp_path: Path) -> None:
    first = _cli(tmp_path, "submit", "-", "--batch", "piped", stdin=CSV)
    assert first.returncode == 0, first.stderr
    second = _cli(tmp_path, "submit", "-", "--batch", "piped", stdin=JSONL)
    assert second.returncode == 0, second.stderr
    status = _cli(tmp_path, "status", "--json")
    (batch,) = json.loads(status.stdout)["batches"]
    assert (batch["batch"], batch["total"]) == ("piped", 3)


def test_submit_dash_needs_a_batch_name(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "submit", "-", stdin=CSV)
    assert proc.returncode == 2 and "--batch" in proc.stderr
    assert not (tmp_path / "changeclothes.db").exists()


def test_validate_dash_reports_the_same_line_as_the_file(tmp_path: Path) -> None:
    bad = CSV + "d,not-a-url,https://example.com/c.jpg,Dress\n"
    (tmp_path / "bad.csv").write_text(bad)
    piped = _cli(tmp_path, "validate", "--no-images", "-", stdin=bad)
    from_file = _cli(tmp_path, "validate", "--no-images", "bad.csv")
    assert piped.returncode == from_file.returncode == 1
    assert "line 4" in piped.stderr
    assert piped.stderr.splitlines()[1:] == from_file.stderr.splitlines()[1:]
