"""`changeclothes submit` and `changeclothes validate`: a manifest into the queue, or checked."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from runner.cli.main import cli
from runner.cli.options import db_option, price_option, s3_options
from runner.cli.stdin import manifest_file
from runner.cli.store import check_db_url, fail, run_store
from runner.cli.uploads import (
    images_dir_option,
    images_root,
    upload_images,
    upload_location,
    upload_option,
)
from runner.manifest import FORMATS, MAX_PROBLEMS, ManifestFormatError, Problem, validate_manifest
from runner.manifest.local import LocalFiles, reading_local_files
from runner.store import open_store
from runner.store.database import database_url
from runner.store.estimate import estimate
from runner.store.submit import Progress, SubmitResult, submit_manifest

if TYPE_CHECKING:
    from runner.preflight import Preflight

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
        kept = result.changed_present - result.replaced
        notes = []
        if result.replaced:
            notes.append(f"{result.replaced} of them replaced by the new row and queued again")
        if kept:
            notes.append(
                f"{kept} with different content left unchanged: --replace updates those not "
                "done, with --force done ones too"
            )
        changed = f" ({'; '.join(notes)})" if notes else ""
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
@click.option(
    "--replace",
    is_flag=True,
    help="Ids already in the batch whose row changed take the new row and are queued again "
    "when not done (queued, failed, cancelled); with --force done ones too.",
)
@click.option(
    "--check-images",
    is_flag=True,
    help="First fetch every input image (as `validate` does, no API call); rows the API "
    "would refuse are invalid rows.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    envvar="CHANGECLOTHES_CONCURRENCY",
    type=click.IntRange(1, 256),
    help="The concurrency `run` will use: the estimate's time assumes it.",
)
@upload_option
@images_dir_option
@s3_options
@price_option
@db_option
def submit(
    manifest: Path,
    batch: str | None,
    base_url: str | None,
    fmt: str | None,
    skip_invalid: bool,
    force: bool,
    replace: bool,
    check_images: bool,
    concurrency: int,
    upload: str | None,
    images_dir: Path | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    s3_addressing: str,
    price: float | None,
    db: str,
) -> None:
    """Queue every row of MANIFEST (CSV or JSONL) as a job in the queue database.

    Columns: id (optional; names the output file), model_url, clothes_url, clothes_type,
    and optional logo_add, logo_url, logo_image, logo_rect (X,Y,Width,Height), rsp_img_type.
    The API's names (ModelUrl, ClothesType, ...) work too, in any case. CSV may be
    comma-, semicolon- or tab-separated, with or without a BOM.

    Every row is checked first: if any is invalid, nothing is queued and each problem is
    listed with its line number. Submitting the same manifest again queues nothing new;
    a changed one adds only the ids the batch does not have yet (with --replace, changed
    rows replace their jobs). Rows skipped as invalid are recorded with their reasons for
    `status`, `export` and `report`. Then the batch's estimate: paid calls still needed,
    the time at --concurrency (from the median API time of past calls in this database,
    else 20 s a call) and, with --price, the cost.

    Local photos: without --base-url, an image path (absolute, `file://`, or relative to
    --images-dir, default the manifest's folder) is a local file; with --upload
    s3://BUCKET/PREFIX each distinct file is checked and uploaded once, named by its content
    (nothing when the bucket has it already), and the job records the object. `run`
    presigns it when it claims the job.

    MANIFEST `-` reads stdin (then --batch is required; the format is sniffed unless
    --format is given).

    Exit status: 0 queued (or nothing new), 1 invalid rows (nothing queued),
    2 usage or file errors, or the bucket could not be used (nothing queued).
    """
    if str(manifest) == "-" and batch is None:
        raise click.UsageError("submit -: give --batch NAME (stdin has no file name)")
    root = images_root(manifest, images_dir, base_url)
    with manifest_file(manifest, fmt) as (path, fmt), contextlib.ExitStack() as local:
        if upload is not None:
            local.enter_context(
                upload_images(
                    path,
                    fmt,
                    base_url,
                    root,
                    upload,
                    (s3_endpoint, s3_region, s3_addressing),
                    skip_invalid,
                )
            )
        refused: dict[int, str] = {}
        if check_images:
            refused = _check_before_submit(path, base_url, fmt, db, skip_invalid)
        name = _submit(path, batch, base_url, fmt, skip_invalid, force, replace, refused, db)
        for line in run_store(lambda: _estimate_lines(db, name, concurrency, price)):
            click.echo(line)


async def _estimate_lines(db: str, batch: str, concurrency: int, price: float | None) -> list[str]:
    async with await open_store(db) as store:
        found = await estimate(store, batch)
    return found.lines(concurrency, price, f"for batch {batch!r}")


def _check_before_submit(
    manifest: Path, base_url: str | None, fmt: str | None, db: str, skip_invalid: bool
) -> dict[int, str]:
    try:
        result = run_store(lambda: _preflight(manifest, fmt, base_url, db))
    except ManifestFormatError as exc:
        fail(str(exc))
    if result.refused and not skip_invalid:
        click.echo(
            f"{manifest.name}: {len(result.refused)} rows have images the API would refuse; "
            "nothing was queued (fix them, or pass --skip-invalid to queue the other rows):",
            err=True,
        )
        _print_preflight(result)
        sys.exit(EXIT_INVALID)
    from runner.preflight import refused_lines

    return refused_lines(result.refused)


def _submit(
    manifest: Path,
    batch: str | None,
    base_url: str | None,
    fmt: str | None,
    skip_invalid: bool,
    force: bool,
    replace: bool,
    refused: dict[int, str],
    db: str,
) -> str:
    """Submit; prints the summary and returns the batch's name (exits on a refusal)."""

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
                replace=replace,
                refused=refused,
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
    return result.batch


def _db_if_present(db: str) -> str | None:
    """The queue database for the image cache, only when it already exists (validate never
    creates one)."""
    try:
        url = database_url(db)
    except ValueError:
        return None
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists():
        return None
    return db


def _print_preflight(result: Preflight) -> None:
    for verdict in result.refused[:MAX_PROBLEMS]:
        click.echo(f"  {verdict}", err=True)
    if len(result.refused) > MAX_PROBLEMS:
        click.echo(f"  ... and {len(result.refused) - MAX_PROBLEMS} more", err=True)


async def _preflight(
    manifest: Path, fmt: str | None, base_url: str | None, db: str | None
) -> Preflight:
    # Imported here: the HTTP client and the image library cost a plain submit ~10 MB.
    from runner.preflight import preflight_manifest

    if db is None:
        return await preflight_manifest(manifest, fmt=fmt, base_url=base_url)
    async with await open_store(db) as store:
        return await preflight_manifest(manifest, fmt=fmt, base_url=base_url, store=store)


@cli.command("validate")
@click.argument(
    "manifest", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@_base_url_option
@_format_option
@click.option(
    "--no-images",
    is_flag=True,
    help="Only check the rows; do not fetch the input images.",
)
@click.option(
    "--upload",
    default=None,
    metavar="s3://BUCKET/PREFIX",
    envvar="CHANGECLOTHES_UPLOAD",
    help="Check the local image files the manifest names, from disk, as `submit --upload` "
    "would before uploading them (nothing is uploaded; without it a local file is an "
    "invalid row, as for submit).",
)
@images_dir_option
@db_option
def validate(
    manifest: Path,
    base_url: str | None,
    fmt: str | None,
    no_images: bool,
    upload: str | None,
    images_dir: Path | None,
    db: str,
) -> None:
    """Check MANIFEST the way `submit` does, then fetch every distinct input image and say
    per row (line and id) which the API would refuse: unreachable (with the HTTP status),
    not an image, a side not between 512 and 3000 px, 8 MB or more once Base64 encoded.
    No API call is made. When the --db queue database exists, verdicts are cached in it
    by URL (a rerun does not fetch again); validate never creates one.

    With --upload, local image files (without --base-url: absolute, `file://`, or relative
    to --images-dir, default the manifest's folder) are read from disk and judged the same
    way, nothing uploaded. Objects in a bucket (s3://) are counted, not fetched (`submit
    --upload` checked them).

    Lists every problem with its line number (the first 50, then a count). MANIFEST `-`
    reads stdin. Exit status: 0 every row would be accepted, 1 invalid rows or refused
    images, 2 usage or file errors.
    """
    root = images_root(manifest, images_dir, base_url)
    with manifest_file(manifest, fmt) as (path, fmt), contextlib.ExitStack() as local:
        if upload is not None:  # what submit --upload would accept, from disk
            upload_location(upload)
            local.enter_context(reading_local_files(LocalFiles(root)))
        _validate(path, base_url, fmt)
        if not no_images:
            _validate_images(path, base_url, fmt, _db_if_present(db))


def _validate_images(manifest: Path, base_url: str | None, fmt: str | None, db: str | None) -> None:
    result = run_store(lambda: _preflight(manifest, fmt, base_url, db))
    cached = result.images - result.fetched
    source = f", {cached} from the cache" if cached else ""
    if result.in_bucket:
        click.echo(
            f"{manifest.name}: {result.in_bucket} images in a bucket (s3://) not fetched: "
            "`submit --upload` checked them when it uploaded them."
        )
    if result.refused:
        click.echo(
            f"{manifest.name}: {len(result.refused)} of {result.rows} rows have images the "
            f"API would refuse ({result.images} images checked{source}):",
            err=True,
        )
        _print_preflight(result)
        sys.exit(EXIT_INVALID)
    click.echo(
        f"{manifest.name}: all {result.images} input images fetched and acceptable"
        f"{f' ({cached} from the cache)' if cached else ''}."
    )


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
