"""`changeclothes demo`: try the runner end to end with no account and no network."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click
from rich.console import Console

from runner.cli.main import cli
from runner.cli.run import report_result
from runner.demo import SAMPLE_MANIFEST, run_demo


@cli.command("demo")
@click.option(
    "--workdir",
    default="demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo's database, results and report.",
)
@click.option(
    "--manifest",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Manifest to submit [default: the sample catalog installed with the runner]. Its "
    "relative image paths are served by the local service from the images/ folder beside it "
    "(else from the sample images).",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Tasks the local service runs at once, and calls the runner keeps in flight.",
)
@click.option(
    "--latency",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds the local service takes per generation.",
)
def demo(workdir: Path, manifest: Path | None, concurrency: int, latency: float) -> None:
    """Run the sample catalog against the local fake ChangeClothes service.

    Starts the service on 127.0.0.1 with demo credentials, submits the manifest, runs it to
    the end, writes one image per row and an HTML report. Running it again finds the
    work done.
    """
    console = Console(soft_wrap=True)  # piped output is never wrapped mid-sentence
    manifest = manifest or SAMPLE_MANIFEST
    outcome = anyio.run(run_demo, workdir, manifest, concurrency, latency, console)
    report_result(outcome.run, console)
    console.print(f"Images: {outcome.results_dir}/{outcome.submitted.batch}/", highlight=False)
    console.print(f"Report: {outcome.report}", highlight=False)
    console.print(f"Queue database: {outcome.db}", highlight=False)
    sys.exit(outcome.run.exit_code)
