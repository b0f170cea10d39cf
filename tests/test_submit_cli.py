"""`changeclothes submit`, `validate`, `status` and `db` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.store.database import head_revision
from tests.store_fixtures import pairs, write_csv

MY_COMMANDS = ["submit", "validate", "status", "db upgrade", "db current"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "queue.db")


def test_submit_queues_and_says_so(tmp_path: Path, db: str) -> None:
    path = write_csv(tmp_path / "spring.csv", pairs(3))
    result = run("submit", path, "--db", db)
    assert result.exit_code == 0, result.output
    assert "3 valid rows into new batch 'spring'" in result.stdout
    assert "3 queued" in result.stdout
    again = run("submit", path, "--db", db)
    assert again.exit_code == 0
    assert "already submitted" in again.stdout and "nothing new" in again.stdout


def test_invalid_rows_exit_1_list_lines_and_queue_nothing(tmp_path: Path, db: str) -> None:
    rows = [*pairs(2), ["a/b", "ftp://x", "https://x/c", "Dress"], *pairs(1, start=2)]
    path = write_csv(tmp_path / "m.csv", rows)
    result = run("submit", path, "--db", db)
    assert result.exit_code == 1
    assert "nothing was queued" in result.stderr
    assert "line 4: model_url 'ftp://x'" in result.stderr and "id 'a/b'" in result.stderr
    status = run("status", "--db", db, "--json")
    assert json.loads(status.stdout)["batches"] == []
    skipped = run("submit", path, "--db", db, "--skip-invalid")
    assert skipped.exit_code == 0
    assert "3 queued" in skipped.stdout and "line 4" in skipped.stderr


def test_more_than_50_problems_are_cut_with_a_count(tmp_path: Path, db: str) -> None:
    rows = [[f"b{i}", "nope", "https://x/c", "Dress"] for i in range(75)]
    result = run("submit", write_csv(tmp_path / "m.csv", rows), "--db", db)
    assert result.exit_code == 1
    assert result.stderr.count("  line ") == 50
    assert "... and 25 more" in result.stderr


def test_batch_base_url_and_format_options(tmp_path: Path, db: str) -> None:
    path = tmp_path / "pairs.data"
    path.write_text('{"model_url": "m/1.jpg", "clothes_url": "c/1.jpg", "clothes_type": "dress"}\n')
    assert run("submit", path, "--db", db).exit_code == 2  # cannot tell the format
    no_base = run("submit", path, "--db", db, "--format", "jsonl")
    assert no_base.exit_code == 1 and "--base-url" in no_base.stderr
    result = run(
        "submit",
        path,
        "--db",
        db,
        "--format",
        "jsonl",
        "--batch",
        "night-1",
        "--base-url",
        "https://cdn.test/shoot",
    )
    assert result.exit_code == 0, result.output
    status = json.loads(run("status", "--db", db, "--json").stdout)
    assert status["batches"][0]["batch"] == "night-1" and status["batches"][0]["queued"] == 1


def test_usage_and_file_errors_exit_2(tmp_path: Path, db: str) -> None:
    assert run("submit", tmp_path / "missing.csv", "--db", db).exit_code == 2
    path = write_csv(tmp_path / "m.csv", pairs(1))
    bad_base = run("submit", path, "--db", db, "--base-url", "ftp://x")
    assert bad_base.exit_code == 2 and "base-url" in bad_base.stderr
    bad_batch = run("submit", path, "--db", db, "--batch", "a/b")
    assert bad_batch.exit_code == 2 and "batch name" in bad_batch.stderr
    unreadable = run("submit", path, "--db", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert unreadable.exit_code == 2 and "database" in unreadable.stderr


def test_status_table_and_json(tmp_path: Path, db: str) -> None:
    run("submit", write_csv(tmp_path / "a.csv", pairs(2, prefix="a")), "--db", db)
    run("submit", write_csv(tmp_path / "b.csv", pairs(3, prefix="b")), "--db", db)
    table = run("status", "--db", db)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "batch",
        "queued",
        "submitting",
        "generated",
        "linked",
        "done",
        "failed",
        "cancelled",
        "total",
    ]
    assert lines[1].split() == ["a", "2", "0", "0", "0", "0", "0", "0", "2"]
    assert lines[3].split() == ["TOTAL", "5", "0", "0", "0", "0", "0", "0", "5"]
    data = json.loads(run("status", "--db", db, "--json", "--batch", "b").stdout)
    assert data["batches"] == [
        {
            "batch": "b",
            "queued": 3,
            "submitting": 0,
            "generated": 0,
            "linked": 0,
            "done": 0,
            "failed": 0,
            "cancelled": 0,
            "total": 3,
        }
    ]
    unknown = run("status", "--db", db, "--batch", "zzz")
    assert unknown.exit_code == 2 and "no batch named 'zzz'" in unknown.stderr
    missing = run("status", "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists()


def test_validate_needs_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    good = run("validate", "--no-images", write_csv(tmp_path / "good.csv", pairs(4)))
    assert good.exit_code == 0 and "4 valid rows (csv, comma-separated)" in good.stdout
    bad = run(
        "validate", write_csv(tmp_path / "bad.csv", [["x", "https://x/m", "https://x/c", "hat"]])
    )
    assert bad.exit_code == 1 and "line 2: clothes_type 'hat'" in bad.stderr
    assert list(tmp_path.glob("*.db")) == []


def test_db_upgrade_and_current(tmp_path: Path, db: str) -> None:
    assert run("db", "current", "--db", db).exit_code == 2  # nothing there yet
    first = run("db", "upgrade", "--db", db)
    head = head_revision()
    assert first.exit_code == 0 and f"upgraded from an empty database to {head}" in first.stdout
    assert f"already at revision {head}" in run("db", "upgrade", "--db", db).stdout
    assert run("db", "current", "--db", db).stdout.strip() == f"{head} (head)"


@pytest.mark.parametrize("name", MY_COMMANDS)
def test_every_command_explains_itself(name: str) -> None:
    result = run(*name.split(), "--help")
    assert result.exit_code == 0
    command: click.Command = cli
    for part in name.split():
        assert isinstance(command, click.Group)
        command = command.commands[part]
    assert command.help and len(command.help) > 40
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} has no help"
