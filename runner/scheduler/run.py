"""The run: claims queued jobs, calls the API within the account's slots, hands results to
the downloads, and leaves the store consistent whatever stops it.

A call is an attempt and a settlement: `_attempt` makes the call and returns one outcome
(`Paid`, or `Refused` with the error and its class); `_settle` maps that outcome to one job
transition. The scheduler is the only module that knows both the API client and the store.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import random
import signal
import time
from dataclasses import asdict, replace
from datetime import timedelta

import aiohttp
import anyio

from runner.api.client import ChangeClothesClient
from runner.api.errors import RESULT_NOT_AN_IMAGE, ApiError, ErrorClass
from runner.clock import utcnow
from runner.scheduler.account import AccountWatch
from runner.scheduler.downloading import Downloads
from runner.scheduler.faults import LOCAL_FAULTS, describe_local_fault
from runner.scheduler.files import NotAnImage
from runner.scheduler.heartbeat import STOPS_THE_RUN, keep_alive
from runner.scheduler.inputs import Inputs, scrub_error
from runner.scheduler.journal import PaidJournal
from runner.scheduler.leases import Lease, SharedSlots
from runner.scheduler.policy import Action, Outcome, Paid, Refused, decide
from runner.scheduler.resume import resume_after_crash
from runner.scheduler.settings import (
    RunResult,
    RunSettings,
    RunStats,
    StopReason,
    default_worker_name,
)
from runner.scheduler.sinks import LocalFolderSink, ResultSink, store_bytes
from runner.scheduler.slots import AccountBackoff
from runner.store import Event, EventKind, Job, JobStateError, Store

__all__ = [
    "RunResult",
    "RunSettings",
    "RunStats",
    "Scheduler",
    "StopReason",
    "default_worker_name",
    "utcnow",
]

log = logging.getLogger(__name__)

CLIENT_CODES = "ClientError."  # codes the client makes up: the API itself did not answer


class Scheduler:
    def __init__(
        self,
        store: Store,
        client: ChangeClothesClient,
        session: aiohttp.ClientSession,
        settings: RunSettings,
        sink: ResultSink | None = None,
        inputs: Inputs | None = None,
    ) -> None:
        self.store = store
        self.inputs = inputs or Inputs()  # presigns bucket inputs as each job is claimed
        store.runner = settings.worker  # its transitions move only jobs this runner claimed
        self.client = client
        self.settings = settings
        self.stats = RunStats()
        self.slots = SharedSlots(store, settings.worker, settings.stale_after, settings.concurrency)
        self._rng = random.Random(settings.seed)
        self.backoff = AccountBackoff(settings.backoff_base, settings.backoff_cap, self._rng)
        self.stop_reason: StopReason | None = None
        self.halt_error: ApiError | None = None
        self.fault: str | None = None
        self._wake = anyio.Event()
        self.account = AccountWatch(settings, self.backoff, self.slots, self.stats, self._halt)
        self.downloads = Downloads(
            store,
            session,
            settings,
            self.stats,
            self._rng,
            liveness=self.slots.liveness,
            interrupted=lambda: self.stop_reason is StopReason.INTERRUPTED,
            notify=self._notify,
            on_fault=self._local_fault,
            sink=sink or LocalFolderSink(settings.out_dir),
        )

    # -- the run as a whole ------------------------------------------------------------

    async def run(self) -> RunResult:
        settings = self.settings
        try:
            self.stats.recovered = await resume_after_crash(self.store, settings)
            self.journal = await anyio.to_thread.run_sync(
                PaidJournal, settings.local_dir, settings.worker
            )
            for job in await self.store.generated_jobs(settings.batch):
                self.downloads.resume(job)
        except LOCAL_FAULTS as exc:
            self._local_fault(exc)
            return self._result({})
        try:
            await self._work()
        except BaseException:
            self.journal.keep()  # replayed at the next start
            raise
        if self.fault is not None:
            self.journal.keep()  # what it holds may not have reached the database
            return self._result({})
        self.journal.close()
        try:
            await self.downloads.give_linked_jobs_their_files()
            counts = await self.store.state_totals(settings.batch)
        except LOCAL_FAULTS as exc:
            self._local_fault(exc)
            return self._result({})
        return self._result(counts)

    def _result(self, counts: dict[str, int]) -> RunResult:
        reason = self.stop_reason or StopReason.FINISHED
        return RunResult(reason, self.stats, self.halt_error, fault=self.fault, counts=counts)

    def _local_fault(self, exc: BaseException) -> None:
        """This machine failed us: stop claiming; calls in flight end and are recorded."""
        if self.fault is None:
            self.fault = describe_local_fault(exc)
            log.error("Halting: %s", self.fault)
            log.debug("The local fault in full:", exc_info=exc)
        self.stop_reason = StopReason.LOCAL_FAULT
        self._notify()

    async def _work(self) -> None:
        settings = self.settings
        async with anyio.create_task_group() as outer:
            if settings.handle_signals:
                outer.start_soon(self._watch_signals, outer.cancel_scope)
            # Outlives every call and download: their transitions are committed through it.
            await outer.start(self.store.writer.run)
            outer.start_soon(self._keep_alive)
            async with anyio.create_task_group() as downloaders:
                for _ in range(settings.download_workers):
                    downloaders.start_soon(self.downloads.worker)
                async with anyio.create_task_group() as calls:
                    try:
                        await self._claim_loop(calls)
                    finally:
                        await self.slots.release_unused()
                # Every call has ended: let the downloads drain, then stop the workers.
                self.downloads.queue.close()
            outer.cancel_scope.cancel()  # the signal watcher

    def request_stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._notify()

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.stop_reason is not StopReason.INTERRUPTED:
                    queue = self.downloads.queue
                    log.warning(
                        "%s: no new calls; finishing the %d in flight and %d downloads. "
                        "Press Ctrl-C again to abandon them (they will be redone on rerun).",
                        signal.Signals(signum).name,
                        self.slots.in_flight,
                        len(queue) + queue.active,
                    )
                    self.stop_reason = StopReason.INTERRUPTED
                    self._notify()
                else:
                    log.warning("Abandoning in-flight work; a rerun resumes it.")
                    scope.cancel()
                    return

    async def _keep_alive(self) -> None:
        await keep_alive(
            self.store,
            self.settings,
            adopt=self.downloads.resume,
            wake=self._notify,
            stop=self._local_fault,
            liveness=self.slots.liveness,
        )

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
        if s.max_jobs is not None and self.stats.done + self.stats.failed >= s.max_jobs:
            return True
        # Calls in flight may yet be paid: counting them keeps the budget a hard cap.
        if s.max_paid is not None and self.stats.paid_calls + self.slots.in_flight >= s.max_paid:
            return True
        return s.until is not None and utcnow() >= s.until

    def _job_cap_reached(self) -> bool:
        """--max-jobs counts jobs, not calls: every call whose job has not gone back to the
        queue is a job done, failed or on its way there. While those could reach the limit,
        no more are claimed; a throttled one going back makes room again."""
        s = self.settings
        return s.max_jobs is not None and self.stats.calls - self.stats.returned >= s.max_jobs

    # -- API calls -----------------------------------------------------------------------

    async def _claim_loop(self, calls: anyio.abc.TaskGroup) -> None:
        settings = self.settings
        while self.stop_reason is None:
            if self._limit_reached():
                self.request_stop(StopReason.LIMIT)
                break
            if self._job_cap_reached():
                await self._sleep_until_work()
                continue
            try:
                started = await self.slots.start(self.backoff, settings.batch)
            except STOPS_THE_RUN as exc:
                self._local_fault(exc)
                break
            if started is None:
                try:
                    if self.slots.in_flight == 0 and self.downloads.queue.idle:
                        # Followers a race left behind a finished leader would keep the
                        # run waiting for them forever: they take its outcome first.
                        await self.store.settle_stranded()
                        if not await self.store.has_work(settings.batch):
                            break
                    await self._sleep_until_work()
                except LOCAL_FAULTS as exc:
                    self._local_fault(exc)
                    break
                continue
            job, lease = started.job, started.lease
            if self.stop_reason is not None:
                await lease.release()
                # A database that just failed may fail this too: the job then stays claimed
                # and the next start puts it back. Escaping here would cancel the calls in
                # flight, whose paid results must still be recorded.
                with contextlib.suppress(*LOCAL_FAULTS):
                    await self.store.release(job.id)
                break
            self.stats.calls += 1
            calls.start_soon(self._call, job, lease)

    async def _call(self, job: Job, lease: Lease) -> None:
        try:
            outcome = await self._attempt(job, lease)
            await self._settle(job, outcome, lease)
        except JobStateError:
            # Taken back from this runner (declared dead) and settled by another since.
            log.warning("Job %s was settled elsewhere; its result is not used.", job.id)
        except LOCAL_FAULTS as exc:
            self._local_fault(exc)
            with anyio.CancelScope(shield=True), contextlib.suppress(*LOCAL_FAULTS):
                # Uncharged; a rerun calls it again. A paid base64 result that could not be
                # kept went back (or failed) already, counted there: not counted twice.
                if await self.store.release(job.id):
                    self.stats.returned += 1
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.store.release(job.id)
            raise
        finally:
            await lease.release()
            self._notify()

    async def _attempt(self, job: Job, lease: Lease) -> Outcome:
        """One API call. An error frees the slot at once; a result keeps it until it is on
        record, so a crash loses at most one paid result per slot."""
        request = await self.inputs.request_for(job, self.settings.rsp_img_type)
        in_flight_at_send = self.slots.in_flight
        sent_at = utcnow()
        started = time.monotonic()
        try:
            result = await self.client.change_clothes(request)
        except ApiError as err:
            await lease.release()
            # An input URL the API echoes keeps no signature.
            return Refused(scrub_error(err), _ms_since(started), in_flight_at_send)
        return Paid(result, sent_at, _ms_since(started))

    async def _settle(self, job: Job, outcome: Outcome, lease: Lease) -> None:
        """The one transition that records `outcome` for `job`."""
        if not (isinstance(outcome, Refused) and outcome.error.error_class is ErrorClass.OUTAGE):
            self.account.endpoint_answers()
        if isinstance(outcome, Paid) or not outcome.error.code.startswith(CLIENT_CODES):
            self.stats.answers += 1
        if isinstance(outcome, Refused):
            await self._settle_refused(job, outcome)
            return
        self.stats.paid_calls += 1
        self.account.on_success()
        result = outcome.result
        paid = self._call_event(job, result.request_id, "OK", None, outcome.latency_ms)
        if result.is_url:
            expires = outcome.sent_at + timedelta(seconds=self.settings.url_ttl)
            # Journaled first, so the slot can go to the next job before the database write.
            self.journal.append(
                job.id, result.result_image, expires, result.request_id, asdict(paid)
            )
            await lease.release()
            try:
                await self.store.mark_generated(
                    job.id, result.result_image, expires, result.request_id, event=paid
                )
            except JobStateError:
                self.journal.stored()
                log.warning("Job %s was settled elsewhere; its result is not used.", job.id)
                self.stats.returned += 1  # not this run's job any more
                return
            # Only now: a write that failed (a full database disk) leaves the entry in the
            # journal, which the next start replays.
            self.journal.stored()
            self.downloads.put(
                replace(
                    job,
                    result_url=result.result_image,
                    result_expires_at=expires,
                    request_id=result.request_id,
                )
            )
            return
        try:
            data = base64.b64decode(result.result_image, validate=True)
            written = await store_bytes(
                self.downloads.sink,
                job.batch_name,
                job.external_id,
                data,
                request_id=result.request_id,
            )
        except (binascii.Error, NotAnImage) as exc:
            # Paid for, but unusable: like a result that will not download, it may be
            # generated again only --max-regenerations times.
            await lease.release()
            why = f"the base64 ResultImage is not an image: {exc}"
            await self.downloads.lost(job, RESULT_NOT_AN_IMAGE, why, paid=paid)
            return
        except LOCAL_FAULTS as exc:
            # Paid for, but nowhere to keep it (a full disk, a results bucket refusing):
            # the call goes on record and the job is generated again only within
            # --max-regenerations; the run then halts on the fault as before.
            with anyio.CancelScope(shield=True), contextlib.suppress(*LOCAL_FAULTS):
                await self.downloads.lost(
                    job, "LocalFault", f"it could not be kept: {exc}", paid=paid
                )
            raise
        await self.store.mark_done(
            job.id, written.location, written.sha256, written.size, result.request_id, event=paid
        )
        await lease.release()
        self.stats.done += 1

    async def _settle_refused(self, job: Job, outcome: Refused) -> None:
        err = outcome.error
        self.stats.errors_by_code[err.code] += 1
        decision = decide(err, job.attempts, utcnow(), self.settings.retry, self._rng)
        # Account-level reactions come first, before any await: the slot this call held is
        # already free, and the claim loop must not send another call into a closed gate.
        self.account.react(decision.action, err, outcome.in_flight_at_send)
        event = self._call_event(
            job, err.request_id, err.code, err.error_class.value, outcome.latency_ms
        )
        match decision.action:
            case Action.BACKOFF | Action.RETRY | Action.OUTAGE:
                self.stats.returned += 1
                if decision.action is Action.RETRY:
                    log.info(
                        "Job %s: %s; retrying at %s", job.external_id, err, decision.not_before
                    )
                await self.store.requeue(
                    job.id,
                    not_before=decision.not_before,
                    charge_attempt=decision.action is Action.RETRY,
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
                self.stats.returned += 1
                await self.store.release(job.id, event=event)

    def _call_event(
        self,
        job: Job,
        request_id: str | None,
        code: str,
        error_class: str | None,
        latency_ms: int,
    ) -> Event:
        return Event(
            EventKind.CALL,
            job_id=job.id,
            batch_id=job.batch_id,
            request_id=request_id or None,
            code=code,
            error_class=error_class,
            latency_ms=latency_ms,
            attempt=job.attempts + 1,
            worker=self.settings.worker,
        )

    def _halt(self, err: ApiError) -> None:
        if self.halt_error is None:
            self.halt_error = err
            log.error("Halting: %s", err)
        self.request_stop(StopReason.HALTED)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
