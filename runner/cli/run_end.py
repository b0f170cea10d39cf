"""How `run` ends: its summary kept beside the results and sent where asked, and, for a run
that ended by an exception, the exit code and the one sentence."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import anyio
import click

from runner.atomic import atomic_text_file
from runner.clock import utcnow
from runner.notify import post_summary, run_on_finish
from runner.scheduler.faults import LOCAL_FAULTS, describe_local_fault
from runner.scheduler.inputs import InputsUnusable
from runner.scheduler.settings import EXIT_INTERRUPTED, EXIT_LOCAL_FAULT, EXIT_UNEXPECTED
from runner.store import StoreError

log = logging.getLogger(__name__)

EXIT_BUCKET = 2  # the bucket of the queue's inputs cannot be used: settings, like credentials


def write_summary_file(summary: dict[str, Any], out_dir: Path) -> None:
    # The pid keeps apart the summaries of runners sharing one folder that end together.
    target = out_dir / f"run-{utcnow():%Y%m%dT%H%M%SZ}-{os.getpid()}.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_text_file(target) as fh:
            json.dump(summary, fh, indent=2)
    except OSError as exc:
        log.warning("Could not write the run summary %s: %s", target, exc.strerror or exc)


async def finish(
    summary: dict[str, Any], out_dir: Path, notify: str | None, on_finish: str | None
) -> None:
    """The summary file beside the results, then the notices; none of it fails the run."""
    await anyio.to_thread.run_sync(write_summary_file, summary, out_dir)
    if notify:
        await post_summary(notify, summary)
    if on_finish:
        await run_on_finish(on_finish, summary)


def exit_for(caught: BaseException) -> NoReturn:
    """The exit code and the one sentence for a run that ended by an exception."""
    exc = first_leaf(caught)
    if isinstance(exc, KeyboardInterrupt):
        click.echo("Interrupted: state saved. Run the same command again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(exc, SystemExit):
        raise exc
    if isinstance(exc, InputsUnusable):  # at the start: the bucket inputs are read from
        click.echo(f"Error: {exc}. Nothing was called; the queue is unchanged.", err=True)
        sys.exit(EXIT_BUCKET)
    if isinstance(exc, (*LOCAL_FAULTS, StoreError)):
        click.echo(f"Error: {describe_local_fault(exc)}", err=True)
        sys.exit(EXIT_LOCAL_FAULT)
    log.debug("The unexpected error in full:", exc_info=exc)
    click.echo(
        f"Error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        " (a bug: run again with -vv for the traceback, and report it). The queue is "
        "consistent; a rerun resumes.",
        err=True,
    )
    sys.exit(EXIT_UNEXPECTED)


def first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
