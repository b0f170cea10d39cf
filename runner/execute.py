"""A whole run as one library call: store, HTTP session, client, scheduler, progress."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
from rich.console import Console

from runner.api.client import ChangeClothesClient, Timeouts, http_session
from runner.credentials import Credentials
from runner.objects.client import SharedObjectStore
from runner.progress import show_progress
from runner.scheduler.inputs import inputs_for_run
from runner.scheduler.run import RunResult, RunSettings, Scheduler
from runner.scheduler.sinks import open_sink
from runner.store import StoreError, open_store
from runner.store.leases import get_account
from runner.store.runners import unregister


async def execute_run(
    db: str,
    credentials: Credentials,
    endpoint: str,
    region: str,
    settings: RunSettings,
    timeouts: Timeouts,
    console: Console | None = None,
    announce: Callable[[dict[str, int], int | None], None] | None = None,
) -> RunResult:
    """The whole run as a library call: store, HTTP session, client, scheduler.
    `announce` is called before it starts with the jobs per state of the run's scope and the
    account's concurrency limit (None when none is recorded)."""
    store = await open_store(db)
    # One client to the store for the whole run, shared by its bucket inputs and its bucket
    # results, opened only when one of them needs it (inputs: at the start when a job to do
    # reads from a bucket, else when the first such job, queued since, is claimed).
    objects = SharedObjectStore(settings.object_store)
    try:
        # Before the start line: a bucket of inputs it cannot use ends the run here.
        inputs = await inputs_for_run(store, objects, settings.presign_ttl, settings.batch)
        if announce is not None:
            account = await get_account(store)
            announce(await store.state_totals(settings.batch), account.concurrency)
        connections = settings.concurrency + settings.download_workers + 4
        async with (
            http_session(timeouts, connections) as session,
            open_sink(settings, objects) as sink,
        ):
            client = ChangeClothesClient(
                session, credentials, endpoint, region, max_result_bytes=settings.max_result_bytes
            )
            scheduler = Scheduler(store, client, session, settings, sink, inputs)
            async with anyio.create_task_group() as tg:
                if console is not None:

                    async def counts() -> dict[str, int]:
                        return await store.state_totals(settings.batch)

                    tg.start_soon(show_progress, scheduler.stats, counts, console)
                result = await scheduler.run()
                tg.cancel_scope.cancel()
            return result
    finally:
        with anyio.CancelScope(shield=True):
            # The bucket client, if the run opened one; its close never hides the outcome.
            with contextlib.suppress(Exception):
                await objects.aclose()
            # Leave the queue: what this runner still holds goes to the next reaper at once.
            with contextlib.suppress(StoreError):
                await unregister(store, settings.worker)
            await store.close()
