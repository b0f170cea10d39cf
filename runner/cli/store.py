"""`changeclothes db upgrade|current` and `changeclothes status`: the queue database."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from runner.cli.main import cli
from runner.cli.options import db_option, stale_after_option
from runner.cli.runner_view import runner_lines, runners_json
from runner.store.errors import StoreError
from runner.store.head import HEAD_REVISION
from runner.store.states import JobState
from runner.store.views import InvalidRow, RunnerInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# This module is `status`'s: on a SQLite queue at head it reads through the standard library
# (runner.store.snapshot), so SQLAlchemy and the store are imported only where needed.

EXIT_USAGE = 2
INVALID_SHOWN = 20  # invalid rows `status` lists; the export has them all
T = TypeVar("T")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run_store(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; a database that can't be opened or used exits 2."""
    import anyio
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return anyio.run(fn)
    except StoreError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        fail(f"queue database error: {str(detail).splitlines()[0]}")


def check_db_url(db: str) -> URL:
    """The --db value as a URL; a malformed one is a usage error that names --db (and only
    this check does: a ValueError from elsewhere is not blamed on --db)."""
    from runner.store.database import database_url

    try:
        return database_url(db)
    except ValueError as exc:  # ArgumentError is a ValueError too
        fail(f"--db: {exc}")


def _require_existing(db: str) -> None:
    """Commands that only read must not create an empty SQLite file by mistake."""
    if "://" not in db:  # a path: no need to parse a URL
        _require_file(Path(db).expanduser().absolute())
        return
    url = check_db_url(db)
    if url.get_backend_name() == "sqlite":
        _require_file(Path(str(url.database)))


def _require_file(path: Path) -> None:
    if not path.exists():
        fail(f"no queue database at {path}; submit a manifest first (or check --db)")


@cli.group("db")
def db_group() -> None:
    """Look after the queue database's schema (applied automatically on every open)."""


@db_group.command("upgrade")
@db_option
def db_upgrade(db: str) -> None:
    """Bring the queue database's schema to the newest revision (creating it if missing).

    Every command that opens the database does this by itself; this is for operators who
    want to migrate ahead of time, e.g. a shared PostgreSQL queue before a rollout.
    """

    from runner.store import open_store
    from runner.store.database import database_url, display_url

    async def go() -> tuple[str | None, str | None]:
        async with await open_store(db, migrate_schema=False) as store:
            before = await store.revision()
            await store.upgrade()
            return before, await store.revision()

    check_db_url(db)
    before, after = run_store(go)
    where = display_url(database_url(db))
    if before == after:
        click.echo(f"{where}: already at revision {after} (head).")
    else:
        click.echo(f"{where}: upgraded from {before or 'an empty database'} to {after} (head).")


@db_group.command("current")
@db_option
def db_current(db: str) -> None:
    """Print the queue database's schema revision and whether it is the newest."""
    _require_existing(db)
    from runner.store import open_store

    async def go() -> str | None:
        async with await open_store(db, migrate_schema=False) as store:
            return await store.revision()

    revision = run_store(go)
    head = HEAD_REVISION
    if revision is None:
        click.echo("none (empty database; any command will create the schema)")
    elif revision == head:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision} (head is {head}; any command will upgrade it)")


@cli.command("status")
@click.option("--batch", default=None, help="Only this batch [default: every batch].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@stale_after_option
@db_option
def status(batch: str | None, as_json: bool, stale_after: float, db: str) -> None:
    """Show how many jobs of each batch are in each state, and the runners at work.

    States: queued (waiting for an API slot), submitting (call in flight), generated
    (result waiting for download), linked (waiting on an identical job), done, failed.
    Runners: live ones (host, pid, since, jobs in flight, API leases held), then stale ones.
    Exits 2 when there is no queue database.
    """
    _require_existing(db)
    statuses, invalid, invalid_counts, runners = _read_status(db, batch, stale_after)
    if as_json:
        document = status_json(statuses)
        document["invalid_rows"] = [dataclasses.asdict(row) for row in invalid]
        document["runners"] = runners_json(runners)
        click.echo(json.dumps(document, indent=2))
        return
    if not statuses:
        click.echo("No batches yet: submit a manifest with `changeclothes submit`.")
    else:
        _print_table(*status_table(statuses))
        _print_invalid(invalid, invalid_counts)
    if runners:
        for line in runner_lines(runners):
            click.echo(line)


def _read_status(
    db: str, batch: str | None, stale_after: float
) -> tuple[dict[str, dict[str, int]], list[InvalidRow], dict[str, int], list[RunnerInfo]]:
    """Counts, invalid rows and runners: a SQLite file at head is read with the standard
    library (no SQLAlchemy to load), anything else through the store (which migrates)."""
    if "://" not in db:
        from runner.store.snapshot import read_status

        try:
            seen = read_status(
                Path(db).expanduser(),
                batch,
                invalid_limit=INVALID_SHOWN,
                stale_after=timedelta(seconds=stale_after),
            )
        except StoreError as exc:
            fail(str(exc))
        if seen is not None:
            return seen.counts, seen.invalid, seen.invalid_counts, seen.runners
    from runner.store import open_store
    from runner.store.reports import invalid_rows_of
    from runner.store.runners import list_runners

    async def go() -> tuple[
        dict[str, dict[str, int]], list[InvalidRow], dict[str, int], list[RunnerInfo]
    ]:
        async with await open_store(db) as store:
            counts = await store.counts(batch)
            invalid, invalid_counts = await invalid_rows_of(store, batch, limit=INVALID_SHOWN)
            runners = await list_runners(store, timedelta(seconds=stale_after))
            return counts, invalid, invalid_counts, runners

    return run_store(go)


def _print_invalid(invalid: list[InvalidRow], counts: dict[str, int]) -> None:
    """The rows submits skipped as invalid: they are in no state, so say so here."""
    for name, n in counts.items():
        click.echo(
            f"Batch {name}: {n} invalid row{'s' if n != 1 else ''} skipped at submit, not "
            "queued (`export --state invalid` lists them all):"
        )
        for row in (r for r in invalid if r.batch == name):
            ident = f" (id {row.id})" if row.id else ""
            click.echo(f"  line {row.line}{ident}: {row.problems}")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for column in table.columns[1:]:
            column.justify = "right"
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        click.echo("  ".join(cells).rstrip())


def status_json(counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    totals = {str(s): sum(per[str(s)] for per in counts.values()) for s in JobState}
    return {
        "batches": [
            {"batch": name, **per, "total": sum(per.values())} for name, per in counts.items()
        ],
        "total": {**totals, "total": sum(totals.values())},
    }


def status_table(counts: dict[str, dict[str, int]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (a TOTAL row when there are several batches), numbers as text."""
    data = status_json(counts)
    header = ["batch", *(str(s) for s in JobState), "total"]
    rows = [
        [b["batch"], *(str(b[str(s)]) for s in JobState), str(b["total"])] for b in data["batches"]
    ]
    if len(counts) > 1:
        total = data["total"]
        rows.append(["TOTAL", *(str(total[str(s)]) for s in JobState), str(total["total"])])
    return header, rows
