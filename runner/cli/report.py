"""`changeclothes report` and `export`: the morning after a run, read."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from runner.atomic import atomic_text_file
from runner.cli.buckets import bucket_out, require_s3_client
from runner.cli.main import cli
from runner.cli.options import (
    db_option,
    link_ttl_option,
    object_store_config,
    out_option,
    s3_options,
)
from runner.cli.store import _require_existing, fail, run_store
from runner.export_rows import MANIFEST_COLUMNS, manifest_row, safe_cell
from runner.objects import ObjectRef, ObjectStoreConfig, ObjectStoreError, is_bucket_url
from runner.preflight import add_input_thumbnails
from runner.report import DEFAULT_NAME, write_report
from runner.report_bucket import (
    BucketLinks,
    bucket_inputs_of,
    bucket_results_of,
    fetch_bucket_results,
)
from runner.store import (
    JobState,
    open_store,
)
from runner.store.export import EXPORT_COLUMNS, INVALID_STATE, iter_export_rows
from runner.store.reports import GALLERY_LIMIT, ReportData, report_data

if TYPE_CHECKING:
    from runner.objects.client import ObjectStore

EXPORT_FORMATS = ("csv", "jsonl")

_batch_option = click.option(
    "--batch", default=None, help="Only this batch [default: every batch]."
)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# -- report ------------------------------------------------------------------------------------


@cli.command("report")
@db_option
@out_option
@_batch_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"HTML file to write [default: {DEFAULT_NAME} in the --out folder, next to the "
    "results it shows].",
)
@click.option(
    "--gallery-limit",
    default=GALLERY_LIMIT,
    show_default=True,
    type=click.IntRange(0),
    help="Jobs shown per batch in the review sheet, with their thumbnails (0: no sheet).",
)
@click.option(
    "--no-fetch",
    is_flag=True,
    help="Do not fetch input images the preflight has not cached: the sheet shows no "
    "thumbnail for them.",
)
@link_ttl_option
@s3_options
def report(
    db: str,
    out: str,
    batch: str | None,
    output: Path | None,
    gallery_limit: int,
    no_fetch: bool,
    link_ttl: float,
    s3_endpoint: str | None,
    s3_region: str | None,
    s3_addressing: str,
) -> None:
    """Write one self-contained HTML page on the queue: what happened, what to do next.

    Per batch: jobs per state; paid calls, throttled answers, failed calls by code,
    re-generations after expired result URLs and total API time; the failed jobs with their
    code, message, attempts and what to do; the jobs not finished yet with their last error;
    the rows a submit skipped as invalid; and the review sheet: per job, model | garment |
    result thumbnails side by side with id, clothes type, state and, for a failure, code,
    message and what to do, filtered by state and clothes type, a page at a time.

    Thumbnails are embedded, so the file alone can be mailed; links to the full-size
    results are relative to the report (keep it beside the results folder). Input images
    the preflight has not cached are fetched once (and cached) unless --no-fetch.

    Results in a bucket (`run --out s3://...`): their thumbnails are fetched from the bucket
    now, and they link to presigned URLs valid for --link-ttl: anyone with the report can
    open them until then. The report is then written to ./report.html unless --output.
    """
    _require_existing(db)
    in_bucket = bucket_out(out) is not None
    config = object_store_config(s3_endpoint, s3_region, s3_addressing)

    async def go() -> tuple[ReportData, BucketLinks | None]:
        async with await open_store(db) as store:
            data = await report_data(store, batch, gallery_limit=gallery_limit)
            links = None
            results = bucket_results_of(data)
            inputs = [] if no_fetch else bucket_inputs_of(data)
            if results or inputs:
                links = await _from_buckets(store, data, config, results, int(link_ttl))
            if not no_fetch:
                await add_input_thumbnails(store, data)
            return data, links

    data, links = run_store(go)
    if output is not None:
        path = output
    else:
        path = Path(DEFAULT_NAME) if in_bucket else Path(out) / DEFAULT_NAME
    try:
        write_report(data, path, Path(out), links)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    done = sum(b.done for b in data.batches)
    failed = sum(b.failed_total for b in data.batches)
    waiting = sum(b.unfinished_total for b in data.batches)
    paid = sum(b.paid_calls for b in data.batches)
    click.echo(
        f"{_plural(len(data.batches), 'batch', 'batches')}: {done} done, "
        f"{failed} failed, {waiting} not finished; {_plural(paid, 'paid call')}."
    )
    click.echo(f"Report: {path}")
    if links is not None and links.results:
        click.echo(
            f"Links to results in the bucket are valid until {links.expires_at:%Y-%m-%d %H:%M} "
            "UTC: anyone with the report can open them until then."
        )


async def _from_buckets(
    store: Any,
    data: ReportData,
    config: ObjectStoreConfig,
    results: list[str],
    link_ttl: int,
) -> BucketLinks | None:
    """Thumbnails and presigned links of the bucket results, and the bucket inputs'
    thumbnails; a warning (never a failure) when the bucket cannot be read."""
    from runner.objects.client import open_object_store

    try:
        async with open_object_store(config) as objects:
            links = await fetch_bucket_results(objects, results, link_ttl)
            await add_input_thumbnails(store, data, objects)
    except ObjectStoreError as exc:  # the client is not installed
        click.echo(f"Warning: {exc}: the bucket's images have no thumbnail or link.", err=True)
        return None
    if links.failures:
        click.echo(
            f"Warning: {links.failures} bucket reads failed (the first: {links.first_error}); "
            "those results show no thumbnail or link.",
            err=True,
        )
    return links


# -- export ------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


RESULT_LINK = "result_link"


async def _presigned(objects: ObjectStore, output_path: str | None, ttl: float) -> str | None:
    """A presigned GET for a result in a bucket (made locally: no request is sent)."""
    if not output_path or not is_bucket_url(output_path):
        return None
    return await objects.presign_get(ObjectRef.parse(output_path), int(ttl))


def _guess_format(output: str) -> str:
    return "jsonl" if output.lower().endswith((".jsonl", ".ndjson")) else "csv"


@contextmanager
def _open_output(output: str) -> Iterator[IO[str]]:
    """Standard output for `-`; else a temporary file renamed over OUTPUT once complete."""
    if output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_text_file(Path(output), newline="") as fh:
        yield fh


async def _check_batch(db: str, batch: str) -> None:
    async with await open_store(db) as store, store.transaction() as conn:
        await store.batch_id(conn, batch)


@cli.command("export")
@db_option
@_batch_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS, case_sensitive=False),
    default=None,
    help="csv (with a header row) or jsonl (one JSON object a line) [default: jsonl when "
    "--output ends in .jsonl or .ndjson, else csv].",
)
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="File to write (replaced only once complete), or - for standard output.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([*(str(s) for s in JobState), INVALID_STATE]),
    help="Only jobs in this state; repeatable. 'invalid': the manifest rows a submit skipped.",
)
@click.option(
    "--as-manifest",
    is_flag=True,
    help="Write the input columns under the names `submit` reads (plus error_code and "
    "error_message, which it ignores): fix the rows and submit the file with --replace.",
)
@click.option(
    "--result-links",
    is_flag=True,
    help="Add a column result_link: for a result in a bucket, a presigned URL valid for "
    "--link-ttl. Anyone holding the file can open those results until then.",
)
@link_ttl_option
@s3_options
def export(
    db: str,
    batch: str | None,
    fmt: str | None,
    output: str,
    states: tuple[str, ...],
    as_manifest: bool,
    result_links: bool,
    link_ttl: float,
    s3_endpoint: str | None,
    s3_region: str | None,
    s3_addressing: str,
) -> None:
    """Write one row per job: where it stands and where its result is.

    Columns: batch, id, state, model_url, clothes_url, clothes_type, attempts,
    last_error_code, last_error_message, output_path, sha256, bytes, request_id,
    finished_at (ISO 8601, UTC); then the rows a submit skipped as invalid (state
    'invalid', their line and problems as the message). With --as-manifest, the columns of
    a manifest instead. In CSV a cell a spreadsheet would run as a formula (starting with
    =, +, -, @, tab or CR, and not a number) is written with a leading '. Jobs are read in
    chunks, so a queue of millions of jobs exports in flat memory.

    A result in a bucket shows as its s3:// reference in output_path; --result-links adds
    a presigned link to it (signed material: treat the file as you would the results).
    """
    _require_existing(db)
    if result_links and as_manifest:
        fail("--result-links adds a column to the export, not to --as-manifest")
    if result_links:
        require_s3_client()
    config = object_store_config(s3_endpoint, s3_region, s3_addressing)
    fmt = (fmt or _guess_format(output)).lower()
    if output != "-" and Path(output).is_dir():
        fail(f"--output {output} is a folder; give a file name")
    if batch is not None:  # an unknown batch is an error before a single byte is written
        run_store(lambda: _check_batch(db, batch))
    columns = MANIFEST_COLUMNS if as_manifest else EXPORT_COLUMNS
    if result_links:
        columns = (*columns, RESULT_LINK)
    skipped = 0

    async def go(fh: IO[str]) -> int:
        async with contextlib.AsyncExitStack() as stack:
            objects = None
            if result_links:
                from runner.objects.client import open_object_store

                objects = await stack.enter_async_context(open_object_store(config))
            return await rows(fh, objects)

    async def rows(fh: IO[str], objects: ObjectStore | None) -> int:
        nonlocal skipped
        count = 0
        writer: Any = None
        if fmt == "csv":
            writer = csv.writer(fh)
            writer.writerow(columns)
        async with await open_store(db) as store:
            async for job in iter_export_rows(store, batch, states=states):
                if as_manifest and job["state"] == INVALID_STATE:
                    skipped += 1  # its content was never stored
                    continue
                if objects is not None:
                    job[RESULT_LINK] = await _presigned(objects, job["output_path"], link_ttl)
                row = manifest_row(job) if as_manifest else job
                if writer is not None:
                    writer.writerow([safe_cell(row[c]) for c in columns])
                else:
                    values = {c: _cell(row[c]) for c in columns}
                    fh.write(json.dumps(values, ensure_ascii=False))
                    fh.write("\n")
                count += 1
        return count

    try:
        with _open_output(output) as fh:
            count = run_store(lambda: go(fh))
    except ObjectStoreError as exc:
        fail(f"cannot sign the result links: {exc}")
    except BrokenPipeError:  # `changeclothes export | head`: the reader had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    if output != "-":
        click.echo(f"Exported {_plural(count, 'job')} to {output} ({fmt}).", err=True)
    if skipped:
        click.echo(
            f"{_plural(skipped, 'invalid row')} left out: a skipped row's content is not "
            "stored; fix it in the original manifest (`export --state invalid` lists them).",
            err=True,
        )
