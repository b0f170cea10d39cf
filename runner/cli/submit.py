"""`changeclothes submit` and `changeclothes validate`: a manifest into the queue, or checked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from runner.cli.main import cli
from runner.cli.options import db_option
from runner.cli.stdin import manifest_file
from runner.cli.store import check_db_url, fail, run_store
from runner.manifest import FORMATS, ManifestFormatError, Problem, validate_manifest
from runner.store import open_store
from runner.store.submit import Progress, SubmitResult, submit_manifest

EXIT_INVALID = 1

_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS, case_sensitive=False),
    default=None,
    help="Manifest format [default: from the extension: .csv/.tsv/.txt or .jsonl/.ndjson].",
)
_base_url_option = click.option(
    "--base-url",
    default=None,
    envvar="CHANGECLOTHES_BASE_URL",
    help="Resolve relative image paths in the manifest against this http(s) URL "
    "(without it, every URL must be absolute http:// or https://).",
)


def _print_problems(problems: list[Problem], count: int) -> None:
    for p in problems:
        click.echo(f"  {p}", err=True)
    if count > len(problems):
        click.echo(f"  ... and {count - len(problems)} more", err=True)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), transient=True
    ) as bar:
        tasks: dict[str, object] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase.capitalize(), total=max(total, 1))
            bar.update(tasks[phase], completed=done, total=max(total, 1))  # type: ignore[arg-type]

        yield update


def _summary(result: SubmitResult, manifest: Path) -> list[str]:
    batch = f"batch {result.batch!r}"
    if result.unchanged:
        return [
            f"{manifest.name}: already submitted to {batch} with this content; nothing new queued."
        ]
    new = "new " if result.new_batch else ""
    lines = [f"{manifest.name}: {result.rows} valid rows into {new}{batch}."]
    if result.new == 0:
        lines.append("Nothing new to queue.")
    else:
        parts = [f"{result.queued} queued"]
        if result.linked_done:
            parts.append(
                f"{result.linked_done} done at once from identical finished jobs (no call)"
            )
        if result.linked_waiting:
            parts.append(f"{result.linked_waiting} waiting on identical jobs already queued")
        lines.append("New jobs: " + ", ".join(parts) + ".")
    if result.already_present:
        changed = (
            f" ({result.changed_present} of them with different content, left unchanged)"
            if result.changed_present
            else ""
        )
        lines.append(f"{result.already_present} ids were already in the batch{changed}.")
    if result.duplicates_merged:
        lines.append(f"{result.duplicates_merged} repeated rows without an id were counted once.")
    return lines


@cli.command("submit")
@click.argument(
    "manifest", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--batch",
    default=None,
    help="Batch name [default: the manifest's file name without extension].",
)
@_base_url_option
@_format_option
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Queue the valid rows even if some are invalid (those are listed, not queued).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Generate again rows identical to jobs that are already done or queued elsewhere "
    "(by default they reuse that result, without a new paid call).",
)
@db_option
def submit(
    manifest: Path,
    batch: str | None,
    base_url: str | None,
    fmt: str | None,
    skip_invalid: bool,
    force: bool,
    db: str,
) -> None:
    """Queue every row of MANIFEST (CSV or JSONL) as a job in the queue database.

    Columns: id (optional; names the output file), model_url, clothes_url, clothes_type,
    and optional logo_add, logo_url, logo_image, logo_rect (X,Y,Width,Height), rsp_img_type.
    The API's names (ModelUrl, ClothesType, ...) work too, in any case. CSV may be
    comma-, semicolon- or tab-separated, with or without a BOM.

    Every row is checked first: if any is invalid, nothing is queued and each problem is
    listed with its line number. Submitting the same manifest again queues nothing new;
    a changed one adds only the ids the batch does not have yet.

    MANIFEST `-` reads stdin (then --batch is required; the format is sniffed unless
    --format is given).

    Exit status: 0 queued (or nothing new), 1 invalid rows (nothing queued),
    2 usage or file errors.
    """
    if str(manifest) == "-" and batch is None:
        raise click.UsageError("submit -: give --batch NAME (stdin has no file name)")
    with manifest_file(manifest, fmt) as (path, fmt):
        _submit(path, batch, base_url, fmt, skip_invalid, force, db)


def _submit(
    manifest: Path,
    batch: str | None,
    base_url: str | None,
    fmt: str | None,
    skip_invalid: bool,
    force: bool,
    db: str,
) -> None:

    async def go(progress: Progress | None) -> SubmitResult:
        async with await open_store(db) as store:
            return await submit_manifest(
                store,
                manifest,
                batch=batch,
                fmt=fmt,
                base_url=base_url,
                skip_invalid=skip_invalid,
                force=force,
                progress=progress,
            )

    check_db_url(db)
    try:
        with _progress_bar(sys.stdout.isatty()) as progress:
            result = run_store(lambda: go(progress))
    except ManifestFormatError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {manifest}: {exc.strerror or exc}")

    if result.refused:
        click.echo(
            f"{manifest.name}: {result.invalid} invalid row{'s' if result.invalid != 1 else ''}; "
            "nothing was queued (fix them, or pass --skip-invalid to queue the valid rows):",
            err=True,
        )
        _print_problems(result.problems, result.invalid)
        sys.exit(EXIT_INVALID)
    for line in _summary(result, manifest):
        click.echo(line)
    if result.invalid:
        click.echo(f"Skipped {result.invalid} invalid rows:", err=True)
        _print_problems(result.problems, result.invalid)


@cli.command("validate")
@click.argument(
    "manifest", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@_base_url_option
@_format_option
def validate(manifest: Path, base_url: str | None, fmt: str | None) -> None:
    """Check MANIFEST the way `submit` does, without touching any database.

    Lists every problem with its line number (the first 50, then a count). MANIFEST `-`
    reads stdin. Exit status: 0 valid, 1 invalid rows, 2 usage or file errors.
    """
    with manifest_file(manifest, fmt) as (path, fmt):
        _validate(path, base_url, fmt)


def _validate(manifest: Path, base_url: str | None, fmt: str | None) -> None:
    try:
        report = validate_manifest(manifest, fmt=fmt, base_url=base_url)
    except ManifestFormatError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {manifest}: {exc.strerror or exc}")
    stats = report.stats
    if not report.ok:
        click.echo(f"{manifest.name}: {report.problem_count} invalid rows:", err=True)
        _print_problems(report.problems, report.problem_count)
        sys.exit(EXIT_INVALID)
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab"}.get(stats.delimiter or "", "")
    how = f"{stats.format}, {delimiter}-separated" if delimiter else stats.format
    merged = (
        f"; {stats.duplicates_merged} repeated rows counted once" if stats.duplicates_merged else ""
    )
    click.echo(f"{manifest.name}: {stats.rows} valid rows ({how}){merged}.")
