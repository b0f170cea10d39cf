"""`changeclothes run`: turn the queue into images on disk."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import click
from rich.console import Console
from rich.logging import RichHandler

from runner.api.client import Timeouts
from runner.cli.buckets import bucket_out, default_state_dir
from runner.cli.main import cli
from runner.cli.options import (
    ByteSize,
    Duration,
    db_option,
    endpoint_options,
    object_store_config,
    out_option,
    price_option,
    resolve_endpoint,
    s3_options,
    stale_after_option,
    state_dir_option,
)
from runner.cli.run_end import exit_for, finish
from runner.cli.store import _require_existing, run_store
from runner.clock import utcnow
from runner.credentials import CredentialsError, load_credentials
from runner.execute import execute_run
from runner.objects.client import MAX_PRESIGN_SECONDS
from runner.scheduler.policy import RetryPolicy
from runner.scheduler.run import RunResult, RunSettings, StopReason
from runner.store import WORK_STATES, open_store
from runner.store.estimate import Estimate, estimate
from runner.summary import format_summary, summary_json

log = logging.getLogger(__name__)


def parse_until(value: str | None, now: datetime | None = None) -> datetime | None:
    """HH:MM local time: today, or tomorrow when that time has passed."""
    if value is None:
        return None
    try:
        clock = datetime.strptime(value, "%H:%M").time()
    except ValueError:
        raise click.BadParameter("expected HH:MM, e.g. 06:30", param_hint="--until") from None
    now = now or datetime.now().astimezone()
    moment = now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    if moment <= now:
        moment += timedelta(days=1)
    return moment


def report_result(result: RunResult, console: Console) -> None:
    for line in format_summary(result):
        console.print(line, highlight=False, soft_wrap=True)
    if result.reason is StopReason.HALTED and result.halt is not None:
        err = result.halt
        console.print(
            f"[bold red]Halted[/] by {err.code}: {err.message}. "
            f"{err.advice or 'Fix the cause, then rerun.'} "
            "Queued jobs were left queued; nothing was marked failed.",
            highlight=False,
        )
    elif result.reason is StopReason.LOCAL_FAULT and result.fault is not None:
        console.print(f"[bold red]Halted[/]: {result.fault}", highlight=False)
    elif result.reason is StopReason.INTERRUPTED:
        console.print("Interrupted: state saved. Run the same command again to resume.")
    elif result.reason is StopReason.LIMIT:
        console.print("Stopped at --until/--max-jobs/--max-paid. Run again to continue.")


@cli.command("run")
@db_option
@out_option
@state_dir_option
@s3_options
@endpoint_options
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    envvar="CHANGECLOTHES_CONCURRENCY",
    type=click.IntRange(1, 256),
    help="API calls in flight at once from this process: your account's ChangeClothes "
    "concurrency (1 unless you bought more), or this runner's share of it when several run "
    "(see `changeclothes account set-concurrency`).",
)
@stale_after_option
@click.option(
    "--rsp-img-type",
    default="url",
    show_default=True,
    envvar="CHANGECLOTHES_RSP_IMG_TYPE",
    type=click.Choice(["url", "base64"]),
    help="How results come back (a manifest column overrides it per row). URLs are "
    "downloaded before they expire; base64 is written at once.",
)
@click.option("--batch", default=None, help="Run only this batch (default: every batch).")
@click.option(
    "--until",
    default=None,
    metavar="HH:MM",
    help="Stop claiming new jobs at this local time; in-flight work finishes.",
)
@click.option(
    "--max-jobs",
    default=None,
    type=click.IntRange(1),
    help="Stop claiming once this many jobs are done or failed (throttled answers are not "
    "jobs); calls in flight finish.",
)
@click.option(
    "--max-paid",
    default=None,
    type=click.IntRange(1),
    help="Stop claiming once this many calls were paid for (calls in flight counted, so "
    "never more): a budget for the night. Exit 4 when work is left.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only print the estimate (paid calls needed, time at --concurrency, cost with "
    "--price) and exit; no credentials needed, no call made.",
)
@price_option
@click.option(
    "--download-workers",
    default=16,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="CHANGECLOTHES_DOWNLOAD_WORKERS",
    help="Result downloads in parallel (they never hold an API slot).",
)
@click.option(
    "--max-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    envvar="CHANGECLOTHES_MAX_ATTEMPTS",
    help="Charged attempts per job before a transient error fails it. Throttled answers "
    "are never charged.",
)
@click.option(
    "--retry-delay",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    envvar="CHANGECLOTHES_RETRY_DELAY",
    help="Seconds before the first retry of a transient failure (doubles each attempt).",
)
@click.option(
    "--backoff-base",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="First account-wide backoff after a throttled answer, in seconds.",
)
@click.option(
    "--backoff-cap",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Longest account-wide backoff, in seconds.",
)
@click.option(
    "--notify",
    metavar="URL",
    default=None,
    help='When the run ends, POST its summary (JSON, see README "Notifications") to this '
    "URL; tried 3 times, never failing the run.",
)
@click.option(
    "--on-finish",
    metavar="CMD",
    default=None,
    help="When the run ends, run this shell command with the summary JSON on its standard "
    "input (bounded to 60 s; its failure never fails the run).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON on standard output (the sentences go to standard error).",
)
@click.option(
    "--outage-limit",
    default="30m",
    show_default=True,
    type=Duration(),
    help="When the API endpoint does not answer (refused, DNS, TLS, a proxy's error page), "
    "every call pauses and the runner probes; after this long it halts (exit 3), the queue "
    "intact. Seconds, or 90s, 5m, 1h.",
)
@click.option(
    "--max-result-bytes",
    default="50MB",
    show_default=True,
    type=ByteSize(),
    help="Largest result image accepted, as a download or base64 answer; larger is a bad "
    "result. Also caps what the API's answer may send.",
)
@click.option(
    "--max-regenerations",
    default=2,
    show_default=True,
    type=click.IntRange(0, 10),
    help="Times a job is generated again (each a paid call) when its result expires or will "
    "not download; then it fails with ClientError.ResultLost.",
)
@click.option(
    "--timeout",
    "read_timeout",
    default=180.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds to wait for one generation's answer.",
)
@click.option(
    "--connect-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for a connection to the API.",
)
@click.option(
    "--presign-ttl",
    default="30m",
    show_default=True,
    type=Duration(),
    envvar="CHANGECLOTHES_PRESIGN_TTL",
    callback=lambda _c, _p, v: _check_presign_ttl(v),
    help="Inputs in a bucket (s3://, from `submit --upload`) go to the API as presigned "
    "GET URLs made when the job is claimed, valid this long (at most 7 days); never stored "
    "or logged. Seconds, or 90s, 30m, 2h.",
)
def run_command(
    db: str,
    out: str,
    state_dir: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    s3_addressing: str,
    endpoint: str | None,
    mainland: bool,
    region: str,
    profile: str,
    concurrency: int,
    stale_after: float,
    rsp_img_type: str,
    batch: str | None,
    until: str | None,
    max_jobs: int | None,
    max_paid: int | None,
    dry_run: bool,
    price: float | None,
    download_workers: int,
    max_attempts: int,
    retry_delay: float,
    backoff_base: float,
    backoff_cap: float,
    notify: str | None,
    on_finish: str | None,
    as_json: bool,
    outage_limit: float,
    max_result_bytes: int,
    max_regenerations: int,
    read_timeout: float,
    connect_timeout: float,
    presign_ttl: float,
) -> None:
    """Call ChangeClothes for every queued job and download the results.

    Calls stay within --concurrency; throttled answers back off account-wide; transient
    errors are retried; bad rows fail with the service's code. Interrupt with Ctrl-C (or
    SIGTERM): calls in flight finish and a rerun resumes. Exit codes: 0 all jobs done
    (cancelled ones aside), 1 some jobs failed, 2 usage, credentials, no queue or a bucket
    of inputs (s3://) that cannot be used, 3 halted by
    an account-level error or an endpoint outage (nothing marked failed), 4 stopped by
    --until/--max-jobs/--max-paid with work left, 5 a fault of this machine (disk full, folder
    not writable, database unusable, or this runner declared dead after a pause longer than
    --stale-after), 6 an unexpected error, 130 interrupted.
    """
    if dry_run:  # no call, no credentials needed
        _require_existing(db)
        print_estimate(db, batch, concurrency, price)
        return
    try:
        credentials = load_credentials(profile)
    except CredentialsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    _require_existing(db)
    bucket = bucket_out(out)
    state = Path(state_dir) if state_dir else None
    if bucket is not None and state is None:
        state = default_state_dir(db)
    settings = RunSettings(
        out_dir=state if bucket is not None and state is not None else Path(out),
        bucket=bucket,
        object_store=object_store_config(s3_endpoint, s3_region, s3_addressing),
        state_dir=state,
        concurrency=concurrency,
        stale_after=timedelta(seconds=stale_after),
        download_workers=download_workers,
        rsp_img_type=rsp_img_type,
        batch=batch,
        until=parse_until(until),
        max_jobs=max_jobs,
        max_paid=max_paid,
        retry=RetryPolicy(max_attempts=max_attempts, retry_delay=retry_delay),
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        outage_limit=outage_limit,
        max_result_bytes=max_result_bytes,
        max_regenerations=max_regenerations,
        presign_ttl=presign_ttl,
    )
    timeouts = Timeouts(
        connect=connect_timeout, read=read_timeout, total=read_timeout + connect_timeout + 30
    )
    console = Console(stderr=True)
    if console.is_terminal:  # log records above the live status line, never inside it
        logging.getLogger().handlers[:] = [RichHandler(console=console, show_path=False)]
    api = resolve_endpoint(endpoint, mainland)

    def announce(counts: dict[str, int], account_limit: int | None) -> None:
        line = start_line(api, region, credentials.source, settings, counts, account_limit)
        console.print(line, soft_wrap=True, highlight=False)

    started_at = utcnow()
    try:
        result = anyio.run(
            execute_run, db, credentials, api, region, settings, timeouts, console, announce
        )
    except BaseException as caught:  # every way out ends in an exit code and one sentence
        exit_for(caught)
    summary = summary_json(result, started_at)
    report_result(result, console if as_json else Console(soft_wrap=True))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    anyio.run(finish, summary, settings.local_dir, notify, on_finish)
    sys.exit(result.exit_code)


def _check_presign_ttl(value: float) -> float:
    if value > MAX_PRESIGN_SECONDS:
        raise click.BadParameter("a presigned URL lives at most 7 days", param_hint="--presign-ttl")
    return value


def start_line(
    endpoint: str,
    region: str,
    source: str,
    settings: RunSettings,
    counts: dict[str, int],
    account_limit: int | None,
) -> str:
    """What this run will use, in one line: never a secret."""
    scope = f"batch {settings.batch!r}" if settings.batch else "every batch"
    queued = sum(counts.get(s, 0) for s in WORK_STATES)
    until = (
        f", stops claiming at {settings.until.astimezone():%Y-%m-%d %H:%M %Z}"
        if settings.until
        else ""
    )
    if account_limit is None:
        slots = (
            f"up to {settings.concurrency} calls at once (no account limit recorded: "
            "`changeclothes account set-concurrency N`)"
        )
    else:
        share = min(settings.concurrency, account_limit)
        slots = f"account limit {account_limit}, this process's share up to {share} calls"
    results = (
        f", results to {settings.bucket} (local state in {settings.local_dir})"
        if settings.bucket is not None
        else ""
    )
    return (
        f"Running {scope} ({queued} jobs to do) against {endpoint} ({region}), credentials "
        f"from {source}, {slots}{until}{results}."
    )


def print_estimate(db: str, batch: str | None, concurrency: int, price: float | None) -> None:
    async def go() -> Estimate:
        async with await open_store(db) as store:
            return await estimate(store, batch)

    scope = f"for batch {batch!r}" if batch is not None else "for the whole queue"
    for line in run_store(go).lines(concurrency, price, scope):
        click.echo(line)
