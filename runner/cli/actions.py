"""`changeclothes retry` and `cancel`: the morning after a run, put right."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from runner.api.errors import ErrorClass, rule_for
from runner.cli.main import cli
from runner.cli.options import db_option
from runner.cli.report import _batch_option, _plural
from runner.cli.store import _require_existing, run_store
from runner.store import (
    JobSelection,
    Moved,
    RetryResult,
    move_selected,
    open_store,
    retry_failed,
)

F = TypeVar("F", bound=Callable[..., Any])


def _code_option(which: str) -> Callable[[F], F]:
    return click.option(
        "--code",
        "codes",
        multiple=True,
        metavar="CODE",
        help=f"Only {which} whose last error is CODE; repeat for several. A trailing * "
        "matches a family (e.g. 'FailedOperation.*').",
    )


# -- retry -------------------------------------------------------------------------------------


def _retry_lines(result: RetryResult, scope: str, codes: tuple[str, ...]) -> list[str]:
    if not result.total:
        which = f" with code {', '.join(codes)}" if codes else ""
        return [f"No failed jobs{which} {scope}: nothing to retry."]
    verb = "Would move" if result.dry_run else "Moved"
    lines = [
        f"{verb} {_plural(result.total, 'failed job')} {scope} back to the queue "
        "(attempts reset to 0):"
    ]
    width = max(len(code) for code in result.by_code)
    for code, n in result.by_code.items():
        note = ""
        if rule_for(code).error_class is ErrorClass.BAD_ROW:
            note = "  (refused as a bad row: fails again unless the row's images changed)"
        lines.append(f"  {code.ljust(width)}  {n:>7}{note}")
    if result.waiting:
        lines.append(
            f"{result.waiting} of them will wait for an identical job instead of paying "
            "for a call of their own."
        )
    if result.reused:
        lines.append(
            f"{result.reused} of them {'would be' if result.dry_run else 'were'} done at once "
            "from an identical job's result (no call)."
        )
    if not result.dry_run and result.queued + result.waiting:
        lines.append("Run `changeclothes run` to process them.")
    return lines


@cli.command("retry")
@db_option
@_batch_option
@_code_option("failed jobs")
@click.option(
    "--all-failed",
    is_flag=True,
    help="Every failed job of the batch (or of every batch). The default without --code.",
)
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="ID",
    help="Only the job with this manifest id; repeatable. A chosen job that is done is "
    "generated again (a reviewer rejected it): one more paid call each.",
)
@click.option(
    "--ids-from",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read ids to choose, one a line (as --id), from this file; - for stdin.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many jobs would be moved.")
def retry(
    db: str,
    batch: str | None,
    codes: tuple[str, ...],
    all_failed: bool,
    ids: tuple[str, ...],
    ids_from: IO[str] | None,
    dry_run: bool,
) -> None:
    """Put failed jobs back in the queue, with their attempts reset to 0.

    Without --code, every failed job of the scope; the counts are printed per error code.
    Each job moved gets a 'retry' event in the queue database. A job that failed with the
    identical job it was linked to waits for that one again rather than paying twice.
    With --id (or --ids-from), only those jobs, and the done ones among them are generated
    again too. The next `changeclothes run` processes them.
    """
    if all_failed and codes:
        raise click.UsageError("give --code or --all-failed, not both")
    chosen = [*ids, *_read_ids(ids_from)]
    if ids_from is not None and not chosen:
        raise click.UsageError("--ids-from: the file lists no ids")
    _require_existing(db)

    async def go() -> tuple[RetryResult, Moved]:
        async with await open_store(db) as store:
            result = await retry_failed(store, batch, codes, ids=chosen, dry_run=dry_run)
            regenerated = Moved(dry_run=dry_run)
            if chosen:
                selection = JobSelection(batch, (), chosen)
                regenerated = await move_selected(store, "regenerate", selection, dry_run=dry_run)
            return result, regenerated

    result, regenerated = run_store(go)
    scope = f"of batch {batch!r}" if batch is not None else "across all batches"
    if chosen:
        scope = f"among the {_plural(len(set(chosen)), 'id')} given " + scope
    for line in _retry_lines(result, scope, codes):
        if not (regenerated.total and line.startswith("No failed jobs")):
            click.echo(line)
    if regenerated.total:
        verb = "Would move" if dry_run else "Moved"
        click.echo(
            f"{verb} {_plural(regenerated.total, 'done job')} {scope} back to the queue to be "
            f"generated again: {_plural(regenerated.total, 'more paid call')}."
        )


def _read_ids(source: IO[str] | None) -> list[str]:
    if source is None:
        return []
    return [line.strip() for line in source if line.strip() and not line.startswith("#")]


# -- cancel ------------------------------------------------------------------------------------


@cli.command("cancel")
@db_option
@_batch_option
@_code_option("jobs")
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="ID",
    help="Only the job with this manifest id; repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many jobs would be cancelled.")
def cancel(
    db: str, batch: str | None, codes: tuple[str, ...], ids: tuple[str, ...], dry_run: bool
) -> None:
    """Give up on jobs: queued, failed or linked jobs become 'cancelled' and never run.

    Say which with --batch, --code and --id (together they narrow the choice). A run's exit
    code ignores cancelled jobs, so a team that cancelled what it gave up on gets 0 again.
    A job elsewhere that waited for a cancelled job is queued to run on its own. Each job
    cancelled gets a 'cancelled' event in the queue database.
    """
    if batch is None and not codes and not ids:
        raise click.UsageError("say which jobs to cancel: --batch, --code and/or --id")
    _require_existing(db)

    async def go() -> Moved:
        async with await open_store(db) as store:
            selection = JobSelection(batch, codes, ids)
            return await move_selected(store, "cancel", selection, dry_run=dry_run)

    result = run_store(go)
    if not result.total:
        click.echo("No queued, failed or linked job matches: nothing to cancel.")
        return
    states = ", ".join(f"{n} {state}" for state, n in sorted(result.by_state.items()))
    verb = "Would cancel" if dry_run else "Cancelled"
    click.echo(f"{verb} {_plural(result.total, 'job')} ({states}).")
