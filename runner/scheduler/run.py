"""The run: claims queued jobs, calls the API within the account's slots, downloads results
before their URLs expire, and leaves the store consistent whatever stops it.

The scheduler is the only module that knows both the API client and the store.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import random
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import aiohttp
import anyio

from runner.clock import utcnow
from runner.api.client import ChangeClothesClient
from runner.api.errors import ApiError, ErrorClass
from runner.api.request import ChangeClothesResult
from runner.scheduler.downloads import DownloadFailed, ExpiryQueue, UrlExpired, fetch_result
from runner.scheduler.files import (
    NotAnImage,
    copy_result,
    remove_stale_temp_files,
    write_bytes,
)
from runner.scheduler.journal import PaidJournal, orphaned_entries
from runner.scheduler.policy import Action, RetryPolicy, decide
from runner.scheduler.slots import AccountBackoff, ApiSlots
from runner.store import Event, Job, JobStateError, Store

log = logging.getLogger(__name__)

JOB_NUM_EXCEED = "RequestLimitExceeded.JobNumExceed"



def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StopReason(StrEnum):
    FINISHED = "finished"
    HALTED = "halted"
    INTERRUPTED = "interrupted"
    LIMIT = "limit"  # --until or --max-jobs


@dataclass(frozen=True)
class RunSettings:
    out_dir: Path
    concurrency: int = 1
    download_workers: int = 4
    rsp_img_type: str = "url"
    batch: str | None = None
    until: datetime | None = None  # stop claiming at this moment
    max_jobs: int | None = None  # stop claiming after this many API calls
    retry: RetryPolicy = RetryPolicy()
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    activation_pause: float = 300.0  # ResourceUnavailable.Delivering: pause this long ...
    activation_limit: float = 1800.0  # ... and halt once it has lasted this long
    url_ttl: float = 3600.0  # result URLs are valid this long after the call started
    download_tries: int = 5  # failed fetches of one URL before it is generated again
    poll_interval: float = 1.0
    worker: str = field(default_factory=default_worker_name)
    stale_after: timedelta = timedelta(minutes=15)
    handle_signals: bool = True
    seed: int | None = None


@dataclass
class RunStats:
    """What this run did; read by the progress display and the summary."""

    started: float = field(default_factory=time.monotonic)
    calls: int = 0
    paid_calls: int = 0
    throttled: int = 0
    done: int = 0
    regenerations: int = 0
    failed_by_code: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    recovered: dict[str, int] = field(default_factory=dict)
    downloads: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_code.values())

    @property
    def wall_time(self) -> float:
        return time.monotonic() - self.started


@dataclass
class RunResult:
    reason: StopReason
    stats: RunStats
    halt: ApiError | None = None
    counts: dict[str, int] = field(default_factory=dict)  # jobs per state at the end

    @property
    def exit_code(self) -> int:
        if self.reason is StopReason.HALTED:
            return 3
        if self.reason is StopReason.INTERRUPTED:
            return 130
        if self.counts.get("failed", 0):
            return 1
        if self.reason is StopReason.LIMIT and any(
            self.counts.get(s, 0) for s in ("queued", "submitting", "generated", "linked")
        ):
            return 4
        return 0


class Scheduler:
    def __init__(
        self,
        store: Store,
        client: ChangeClothesClient,
        session: aiohttp.ClientSession,
        settings: RunSettings,
    ) -> None:
        self.store = store
        self.client = client
        self.session = session
        self.settings = settings
        self.stats = RunStats()
        self.slots = ApiSlots(settings.concurrency)
        self._rng = random.Random(settings.seed)
        self.backoff = AccountBackoff(settings.backoff_base, settings.backoff_cap, self._rng)
        self.downloads = ExpiryQueue()
        self.stop_reason: StopReason | None = None
        self.halt_error: ApiError | None = None
        self._activating_since: float | None = None
        self._wake = anyio.Event()

    # -- the run as a whole ------------------------------------------------------------

    async def run(self) -> RunResult:
        settings = self.settings
        removed = await anyio.to_thread.run_sync(remove_stale_temp_files, settings.out_dir)
        if removed:
            log.info("Removed %d temporary files left by an interrupted run.", removed)
        replayed = await self._replay_orphaned_journals()
        self.stats.recovered = await self.store.recover_after_crash(
            utcnow(), worker=settings.worker, stale_after=settings.stale_after
        )
        self.stats.recovered["replayed"] = replayed
        self.journal = await anyio.to_thread.run_sync(
            PaidJournal, settings.out_dir, settings.worker
        )
        for job in await self.store.generated_jobs(settings.batch):
            self._queue_download(job)

        try:
            await self._work()
        except BaseException:
            self.journal.keep()  # replayed at the next start
            raise
        self.journal.close()
        await self._give_linked_jobs_their_files()

        counts = await self.store.state_totals(settings.batch)
        return RunResult(
            self.stop_reason or StopReason.FINISHED, self.stats, self.halt_error, counts
        )

    async def _work(self) -> None:
        settings = self.settings
        async with anyio.create_task_group() as outer:
            if settings.handle_signals:
                outer.start_soon(self._watch_signals, outer.cancel_scope)
            async with anyio.create_task_group() as downloaders:
                for _ in range(settings.download_workers):
                    downloaders.start_soon(self._download_worker)
                async with anyio.create_task_group() as calls:
                    await self._claim_loop(calls)
                # Every call has ended: let the downloads drain, then stop the workers.
                self.downloads.close()
            outer.cancel_scope.cancel()  # the signal watcher

    async def _replay_orphaned_journals(self) -> int:
        """Paid results a killed run had journaled but not yet stored."""
        replayed = 0
        for path, entries in orphaned_entries(self.settings.out_dir):
            for entry in entries:
                try:
                    await self.store.mark_generated(
                        entry["job_id"],
                        entry["result_url"],
                        datetime.fromisoformat(entry["expires_at"]),
                        entry["request_id"],
                        event=Event(**entry["event"]),
                    )
                    replayed += 1
                except JobStateError:
                    pass  # stored before the kill, or the job has moved on since
            path.unlink(missing_ok=True)
        if replayed:
            log.info("Kept %d paid results a killed run had not stored yet.", replayed)
        return replayed

    def request_stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._notify()

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.stop_reason is not StopReason.INTERRUPTED:
                    log.warning(
                        "%s: no new calls; finishing the %d in flight and %d downloads. "
                        "Press Ctrl-C again to abandon them (they will be redone on rerun).",
                        signal.Signals(signum).name,
                        self.slots.in_flight,
                        len(self.downloads) + self.downloads.active,
                    )
                    self.stop_reason = StopReason.INTERRUPTED
                    self._notify()
                else:
                    log.warning("Abandoning in-flight work; a rerun resumes it.")
                    scope.cancel()
                    return

    def _notify(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    async def _sleep_until_work(self) -> None:
        delay = self.settings.poll_interval
        next_due = await self.store.next_not_before(self.settings.batch)
        if next_due is not None:
            delay = min(delay, max((next_due - utcnow()).total_seconds(), 0.01))
        with anyio.move_on_after(delay):
            await self._wake.wait()

    def _limit_reached(self) -> bool:
        s = self.settings
        if s.max_jobs is not None and self.stats.calls >= s.max_jobs:
            return True
        return s.until is not None and utcnow() >= s.until

    # -- API calls -----------------------------------------------------------------------

    async def _claim_loop(self, calls: anyio.abc.TaskGroup) -> None:
        settings = self.settings
        while self.stop_reason is None:
            if self._limit_reached():
                self.request_stop(StopReason.LIMIT)
                break
            # Claimed while the current call runs, so a freed slot is refilled at once.
            job = await self.store.claim_next(utcnow(), settings.worker, settings.batch)
            if job is None:
                if (
                    self.slots.in_flight == 0
                    and self.downloads.idle
                    and not await self.store.has_work(settings.batch)
                ):
                    break
                await self._sleep_until_work()
                continue
            try:
                slot = await self.slots.acquire()
                await self.backoff.wait()  # an account-wide pause holds the slot too
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self.store.release(job.id)
                raise
            if self.stop_reason is not None:
                self.slots.release(slot)
                await self.store.release(job.id)
                break
            self.stats.calls += 1
            calls.start_soon(self._call, job, slot)

    async def _call(self, job: Job, slot: object) -> None:
        in_flight_at_send = self.slots.in_flight
        sent_at = utcnow()
        started = time.monotonic()
        held = [slot]

        def free_slot() -> None:
            if held:
                self.slots.release(held.pop())

        try:
            try:
                result = await self.client.change_clothes(
                    job.to_request(self.settings.rsp_img_type)
                )
            except ApiError as err:
                free_slot()
                latency_ms = int((time.monotonic() - started) * 1000)
                await self._on_error(job, err, latency_ms, in_flight_at_send)
                return
            latency_ms = int((time.monotonic() - started) * 1000)
            await self._on_result(job, result, sent_at, latency_ms, free_slot)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.store.release(job.id)
            raise
        finally:
            free_slot()
            self._notify()

    async def _on_result(
        self,
        job: Job,
        result: ChangeClothesResult,
        sent_at: datetime,
        latency_ms: int,
        free_slot: Callable[[], None],
    ) -> None:
        """Keep a paid result. The slot is held until the result is on record, so a crash
        loses at most one paid result per slot."""
        self.stats.paid_calls += 1
        self.backoff.on_success()
        self.slots.on_success()
        self._activating_since = None
        paid = self._call_event(job, result.request_id, "OK", None, latency_ms)
        if result.is_url:
            expires = sent_at + timedelta(seconds=self.settings.url_ttl)
            # Journaled first, so the slot can go to the next job before the database write.
            self.journal.append(
                job.id, result.result_image, expires, result.request_id, asdict(paid)
            )
            free_slot()
            try:
                await self.store.mark_generated(
                    job.id, result.result_image, expires, result.request_id, event=paid
                )
            except JobStateError:
                log.warning("Job %s was settled elsewhere; its result is not used.", job.id)
                return
            finally:
                self.journal.stored()
            self._queue_download(
                replace(job, result_url=result.result_image, result_expires_at=expires)
            )
            return
        try:
            data = base64.b64decode(result.result_image, validate=True)
            written = await write_bytes(self._folder(job), job.external_id, data)
        except (binascii.Error, NotAnImage) as exc:
            free_slot()
            err = ApiError.from_code(
                "ClientError.BadResponse", f"ResultImage is not an image: {exc}"
            )
            await self._on_error(job, err, latency_ms, 0, event=paid)
            return
        await self.store.mark_done(
            job.id, str(written.path), written.sha256, written.size, result.request_id, event=paid
        )
        free_slot()
        self.stats.done += 1

    def _call_event(
        self,
        job: Job,
        request_id: str | None,
        code: str,
        error_class: str | None,
        latency_ms: int,
    ) -> Event:
        return Event(
            "call",
            job_id=job.id,
            batch_id=job.batch_id,
            request_id=request_id or None,
            code=code,
            error_class=error_class,
            latency_ms=latency_ms,
            attempt=job.attempts + 1,
            worker=self.settings.worker,
        )

    async def _on_error(
        self,
        job: Job,
        err: ApiError,
        latency_ms: int,
        in_flight_at_send: int,
        event: Event | None = None,
    ) -> None:
        """`event` records the call when it is not this error's own (a paid but unusable
        result); by default the error is recorded as the call's outcome."""
        self.stats.errors_by_code[err.code] += 1
        decision = decide(err, job.attempts, utcnow(), self.settings.retry, self._rng)
        # Account-level reactions come first, before any await: the slot this call held is
        # already free, and the claim loop must not send another call into a closed gate.
        self._react(decision.action, err, in_flight_at_send)
        if event is None:
            event = self._call_event(
                job, err.request_id, err.code, err.error_class.value, latency_ms
            )
        match decision.action:
            case Action.BACKOFF:
                await self.store.requeue(
                    job.id,
                    not_before=None,
                    charge_attempt=False,
                    code=err.code,
                    message=err.message,
                    event=event,
                )
            case Action.RETRY:
                log.info("Job %s: %s; retrying at %s", job.external_id, err, decision.not_before)
                await self.store.requeue(
                    job.id,
                    not_before=decision.not_before,
                    charge_attempt=True,
                    code=err.code,
                    message=err.message,
                    event=event,
                )
            case Action.FAIL:
                log.info("Job %s failed: %s", job.external_id, err)
                self.stats.failed_by_code[err.code] += 1
                await self.store.mark_failed(
                    job.id,
                    err.code,
                    err.message,
                    charge_attempt=err.error_class is ErrorClass.TRANSIENT,
                    event=event,
                )
            case Action.WAIT | Action.HALT:
                await self.store.release(job.id, event=event)

    def _react(self, action: Action, err: ApiError, in_flight_at_send: int) -> None:
        """What an error means for the whole account: pause, shrink, or stop."""
        if action is Action.BACKOFF:
            self.stats.throttled += 1
            delay = self.backoff.on_throttle()
            if err.code == JOB_NUM_EXCEED:
                self.slots.on_job_num_exceed(in_flight_at_send)
            log.debug("%s: pausing calls for %.1f s", err.code, delay)
        elif action is Action.WAIT:
            now = time.monotonic()
            if self._activating_since is None:
                self._activating_since = now
                log.warning("%s: the service is still being activated; waiting.", err.code)
            if now - self._activating_since >= self.settings.activation_limit:
                self._halt(err)
            else:
                self.backoff.pause(self.settings.activation_pause)
        elif action is Action.HALT:
            self._halt(err)

    def _halt(self, err: ApiError) -> None:
        if self.halt_error is None:
            self.halt_error = err
            log.error("Halting: %s", err)
        self.request_stop(StopReason.HALTED)

    async def _give_linked_jobs_their_files(self) -> None:
        """A job finished from an identical job's result gets its own `<batch>/<id>` file."""
        for job in await self.store.linked_results(self.settings.batch):
            if not job.output_path:
                continue
            source, folder = Path(job.output_path), self._folder(job)
            if source.parent.resolve() == folder.resolve():
                continue
            try:
                copied = await anyio.to_thread.run_sync(
                    copy_result, source, folder, job.external_id
                )
            except OSError as exc:
                log.warning("Could not copy %s for job %s: %s", source, job.external_id, exc)
                continue
            await self.store.set_output_path(job.id, str(copied))

    # -- downloads -----------------------------------------------------------------------

    def _folder(self, job: Job) -> Path:
        return self.settings.out_dir / job.batch_name

    def _queue_download(self, job: Job) -> None:
        assert job.result_expires_at is not None
        self.downloads.put(job.result_expires_at, job)

    async def _download_worker(self) -> None:
        while (job := await self.downloads.get()) is not None:
            try:
                await self._download(job)
            finally:
                self.downloads.done()
                self._notify()

    async def _download(self, job: Job) -> None:
        assert job.result_url is not None and job.result_expires_at is not None
        tries = 0
        while True:
            if utcnow() >= job.result_expires_at:
                await self._expired(job, "the URL's lifetime passed before it was fetched")
                return
            started = time.monotonic()
            try:
                written = await fetch_result(
                    self.session, job.result_url, self._folder(job), job.external_id
                )
            except UrlExpired as exc:
                await self._expired(job, str(exc))
                return
            except (DownloadFailed, NotAnImage) as exc:
                tries += 1
                await self.store.record_event(
                    "download",
                    job_id=job.id,
                    batch_id=job.batch_id,
                    code=type(exc).__name__,
                    latency_ms=int((time.monotonic() - started) * 1000),
                    worker=self.settings.worker,
                )
                if tries >= self.settings.download_tries:
                    await self._expired(job, f"{tries} failed downloads: {exc}")
                    return
                if self.stop_reason is StopReason.INTERRUPTED:
                    return  # stays `generated`: the rerun fetches it
                await anyio.sleep(min(30.0, 0.5 * 2**tries) * self._rng.uniform(0.5, 1.0))
                continue
            fetched = Event(
                "download",
                job_id=job.id,
                batch_id=job.batch_id,
                code="OK",
                latency_ms=int((time.monotonic() - started) * 1000),
                size=written.size,
                worker=self.settings.worker,
            )
            try:
                await self.store.mark_done(
                    job.id, str(written.path), written.sha256, written.size, event=fetched
                )
            except JobStateError:
                # Another runner on a shared queue finished it first: same result, same file.
                log.debug("Job %s was already settled elsewhere", job.external_id)
                return
            self.stats.done += 1
            self.stats.downloads += 1
            return

    async def _expired(self, job: Job, why: str) -> None:
        log.info("Result of %s is gone (%s): generating it again.", job.external_id, why)
        try:
            await self.store.expire_generated(job.id)
        except JobStateError:
            log.debug("Job %s was already settled elsewhere", job.external_id)
            return
        self.stats.regenerations += 1
