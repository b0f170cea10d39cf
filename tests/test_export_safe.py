"""Exports a spreadsheet cannot run, and rows that were never jobs still have a reason."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.export_rows import safe_cell
from runner.store import open_store
from runner.store.submit import submit_manifest

pytestmark = pytest.mark.anyio
EVIL = '=HYPERLINK("http://127.0.0.1:9/x","click")'


async def invoke(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


def test_formula_cells_get_an_apostrophe_and_numbers_do_not() -> None:
    for value in ("=1+2", "+cmd", "-x", "@SUM(A1)", "\tq", "\rq"):
        assert safe_cell(value) == "'" + value
    for kept in ("-5", "+3.5", "1e3", "plain", "a=b", 7, None):
        assert safe_cell(kept) == kept


async def test_export_neutralises_a_message_and_lists_invalid_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    manifest = tmp_path / "night.csv"
    manifest.write_text(
        "id,model_url,clothes_url,clothes_type\n"
        "a,http://127.0.0.1:9/m.jpg,http://127.0.0.1:9/c.jpg,Dress\n"
        "b,http://127.0.0.1:9/m.jpg,http://127.0.0.1:9/c.jpg,hat\n"
    )
    async with await open_store(db) as store:
        result = await submit_manifest(store, manifest, skip_invalid=True)
        assert result.queued == 1 and result.invalid == 1
        job = await store.claim_next(datetime.now(UTC), "w1")
        assert job is not None
        await store.mark_failed(job.id, "FailedOperation.ImageDecodeFailed", EVIL)

    exported = await invoke("export", "--db", db)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["id"], r["state"]) for r in rows] == [("a", "failed"), ("b", "invalid")]
    assert rows[0]["last_error_message"] == "'" + EVIL
    assert rows[1]["last_error_message"].startswith("line 3: clothes_type 'hat'")

    invalid = await invoke("export", "--db", db, "--state", "invalid", "--format", "jsonl")
    assert invalid.stdout.count("\n") == 1 and '"state": "invalid"' in invalid.stdout
    as_manifest = await invoke("export", "--db", db, "--as-manifest")
    assert "1 invalid row left out" in as_manifest.stderr
    assert as_manifest.stdout.splitlines()[0].startswith("id,model_url,clothes_url,clothes_type")
