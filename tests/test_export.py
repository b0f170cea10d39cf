"""`changeclothes export`: one row per job, as CSV or JSONL, streamed in chunks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from runner.cli import cli
from runner.store import open_store
from runner.store.export import EXPORT_COLUMNS, iter_export_rows
from runner.store.submit import submit_manifest
from tests.report_support import BASE_URL, DECODE, ODD_ID, XSS, Morning, build_morning
from tests.report_support import write_manifest as write_plain_manifest
from tests.run_support import all_jobs
from tests.store_fixtures import database_for

COLUMNS = [
    "batch",
    "id",
    "state",
    "model_url",
    "clothes_url",
    "clothes_type",
    "attempts",
    "last_error_code",
    "last_error_message",
    "output_path",
    "sha256",
    "bytes",
    "request_id",
    "finished_at",
]


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _expected(m: Morning) -> dict[str, dict[str, Any]]:
    return {j["external_id"]: j for j in anyio.run(all_jobs, m.db)}


def test_csv_has_one_row_per_job_with_the_documented_columns(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    out = tmp_path / "jobs.csv"
    result = invoke("--db", m.db, "--output", str(out))
    assert "Exported 9 jobs" in result.stderr

    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS == list(EXPORT_COLUMNS)
        rows = {r["id"]: r for r in reader}
    jobs = _expected(m)
    assert set(rows) == set(jobs)
    for ident, row in rows.items():
        job = jobs[ident]
        assert row["batch"] == m.batch
        assert row["state"] == job["state"]
        assert row["attempts"] == str(job["attempts"])
        assert row["last_error_code"] == (job["last_error_code"] or "")
        assert row["output_path"] == (job["output_path"] or "")
        assert row["sha256"] == (job["sha256"] or "")
    assert rows[ODD_ID]["output_path"] == str(m.done[ODD_ID])  # commas and quotes survive
    assert rows["e-decode"]["last_error_code"] == DECODE
    assert rows["e-decode"]["last_error_message"].endswith(XSS)
    assert rows["f-rpc"]["attempts"] == "1"
    done = rows["a-done"]
    assert int(done["bytes"]) == m.done["a-done"].stat().st_size
    assert done["request_id"] and done["finished_at"].endswith("+00:00")
    assert rows["i-fresh"]["finished_at"] == rows["i-fresh"]["output_path"] == ""


def test_jsonl_to_stdout_by_extension_or_flag(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    stdout = invoke("--db", m.db, "--format", "jsonl").stdout
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == 9 and list(rows[0]) == COLUMNS
    by_id = {r["id"]: r for r in rows}
    assert by_id["i-fresh"]["output_path"] is None and by_id["i-fresh"]["bytes"] is None
    assert by_id["a-done"]["bytes"] == m.done["a-done"].stat().st_size
    assert by_id["f-rpc"]["attempts"] == 1

    invoke("--db", m.db, "--output", str(tmp_path / "jobs.jsonl"))
    lines = (tmp_path / "jobs.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows


def test_batch_option_exports_only_that_batch(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)

    async def second_batch() -> None:
        async with await open_store(m.db) as store:
            manifest = write_plain_manifest(tmp_path / "autumn.csv", ["x1", "x2"])
            await submit_manifest(store, manifest, base_url=BASE_URL + "other/")

    anyio.run(second_batch)
    rows = list(csv.DictReader(io.StringIO(invoke("--db", m.db, "--batch", "autumn").stdout)))
    assert [(r["batch"], r["id"]) for r in rows] == [("autumn", "x1"), ("autumn", "x2")]
    assert len(list(csv.DictReader(io.StringIO(invoke("--db", m.db).stdout)))) == 11

    result = CliRunner().invoke(cli, ["export", "--db", m.db, "--batch", "winter"])
    assert result.exit_code == 2 and "no batch named 'winter'" in result.stderr
    assert result.stdout == "", "nothing, not even the header, before the error"


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_rows_are_read_in_chunks_by_id(backend: str, tmp_path: Path) -> None:
    ids = [f"job-{n:03d}" for n in range(23)]
    async with database_for(backend, tmp_path) as db, await open_store(db) as store:
        await submit_manifest(
            store, write_plain_manifest(tmp_path / "big.csv", ids), base_url=BASE_URL
        )
        selects: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
                selects.append(statement)

        sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        got = []
        async for row in iter_export_rows(store, chunk=5):
            got.append(row["id"])
            # No transaction is held between chunks: a writer gets in at any moment.
            async with store.transaction(immediate=True) as conn:
                await conn.execute(sa.text("SELECT 1"))
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert got == ids
    assert len(selects) == 5, "23 jobs in chunks of 5"
    assert all("LIMIT" in s.upper() for s in selects)


def test_an_existing_file_is_replaced_only_when_the_export_succeeds(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "jobs.csv"
    out.write_text("previous export\n")
    # The batch is looked up once the output is open: the export fails half-way.
    result = CliRunner().invoke(
        cli, ["export", "--db", m.db, "--batch", "nope", "--output", str(out)]
    )
    assert result.exit_code == 2
    assert out.read_text() == "previous export\n"
    assert [p.name for p in folder.iterdir()] == ["jobs.csv"], "no temporary file left"

    invoke("--db", m.db, "--output", str(out))
    assert out.read_text().startswith("batch,id,state,")
    assert [p.name for p in folder.iterdir()] == ["jobs.csv"]
