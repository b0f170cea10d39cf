"""`changeclothes fake-server`: run the local ChangeClothes-compatible service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from runner.cli.main import cli
from runner.fake import (
    ACCOUNT_STATES,
    LATENCY_DISTS,
    FakeConfig,
    FakeServer,
    parse_fault,
    run_until_stopped,
)
from runner.fake.config import DEFAULT_IMAGES_DIR


def _faults(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    faults: dict[str, float] = {}
    for text in values:
        try:
            code, rate = parse_fault(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        faults[code] = rate
    if sum(faults.values()) > 1.0:
        raise click.BadParameter("the fault rates add up to more than 1")
    return faults


@cli.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Tasks the account may have in flight; one more gets RequestLimitExceeded.JobNumExceed.",
)
@click.option(
    "--ttl",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a RspImgType=url result stays downloadable; then its URL answers 403.",
)
@click.option(
    "--latency",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Mean seconds one generation takes.",
)
@click.option(
    "--latency-dist",
    default="fixed",
    show_default=True,
    type=click.Choice(LATENCY_DISTS),
    help="How the latency varies: always the mean, uniform on [0, 2*mean], or "
    "lognormal around the mean.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for latency, faults and resets, to replay the same run.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Calls per second the account may make; more get RequestLimitExceeded.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_faults,
    metavar="CODE=RATE",
    help="Answer this share of valid calls with an error code of the API, e.g. "
    "FailedOperation.InnerError=0.05. Repeatable.",
)
@click.option(
    "--reset-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of answers (API calls and result downloads) whose connection is dropped mid-body.",
)
@click.option(
    "--download-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds each result download trickles over.",
)
@click.option(
    "--account-state",
    default="ok",
    show_default=True,
    type=click.Choice(list(ACCOUNT_STATES)),
    help="Anything but ok answers every call with the matching halting code "
    "(ResourceUnavailable.InArrears, .LowBalance, .StopUsing).",
)
@click.option(
    "--clock-offset",
    default=0.0,
    show_default=True,
    type=float,
    help="Seconds the server's clock is ahead of the real time (tests clients' clock correction).",
)
@click.option(
    "--images-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder served under /images/ [default: the sample images installed with the runner].",
)
def fake_server(
    host: str,
    port: int,
    concurrency: int,
    ttl: float,
    latency: float,
    latency_dist: str,
    seed: int | None,
    rate_limit: float | None,
    faults: dict[str, float],
    reset_rate: float,
    download_delay: float,
    account_state: str,
    clock_offset: float,
    images_dir: Path | None,
) -> None:
    """Run a local server that behaves like Tencent's ChangeClothes API.

    It checks TC3 signatures, parameters and the documented image limits, holds the
    account's concurrency and rate limits, and draws a real result image. It accepts the
    key pair in TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY when set, else public demo
    credentials it prints. Point the runner at it with --endpoint http://HOST:PORT; it serves
    its images under /images/, so the sample manifests (whose paths start with images/) take
    --base-url http://HOST:PORT/. GET /_admin/stats shows what it saw.
    Stop it with Ctrl-C.
    """
    try:
        config = FakeConfig(
            concurrency=concurrency,
            ttl=ttl,
            latency=latency,
            latency_dist=latency_dist,
            seed=seed,
            rate_limit=rate_limit,
            faults=faults,
            reset_rate=reset_rate,
            download_delay=download_delay,
            account_state=account_state,
            clock_offset=clock_offset,
            images_dir=images_dir if images_dir is not None else DEFAULT_IMAGES_DIR,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def announce(server: FakeServer) -> None:
        click.echo(
            f"Fake ChangeClothes API at {server.url} (images: {server.images_url}, "
            f"stats: {server.url}/_admin/stats). Ctrl-C stops it."
        )
        click.echo(f"Accepting {server.credentials.describe()}")

    try:
        asyncio.run(run_until_stopped(config, host, port, announce))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
