"""The download side of a run: a pool of workers that fetch result URLs, earliest expiry
first, so the paid API slots never wait on a download."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import aiohttp
import anyio

from runner.api.errors import RESULT_LOST, RESULT_NOT_AN_IMAGE, URL_EXPIRED
from runner.clock import utcnow
from runner.scheduler.downloads import (
    DownloadError,
    DownloadLimits,
    ExpiryQueue,
    UrlExpired,
    fetch_result,
)
from runner.scheduler.faults import LOCAL_FAULTS
from runner.scheduler.files import BeforeCommit, NotAnImage
from runner.scheduler.heartbeat import Liveness
from runner.scheduler.settings import RunSettings, RunStats
from runner.scheduler.sinks import ResultSink
from runner.store import Event, EventKind, Job, JobStateError, Store

log = logging.getLogger(__name__)


class TakenOver(Exception):
    """The job passed to another runner while this one was fetching its result."""


class Downloads:
    """Generated results waiting for their download, and the workers that fetch them."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        settings: RunSettings,
        stats: RunStats,
        rng: random.Random,
        liveness: Liveness,
        interrupted: Callable[[], bool],
        notify: Callable[[], None],
        on_fault: Callable[[BaseException], None],
        sink: ResultSink,
    ) -> None:
        self.store = store
        self.sink = sink  # where results go: a folder or a bucket
        self._resumed: set[int] = set()  # jobs an earlier life of a runner may have stored
        self.session = session
        self.settings = settings
        self.stats = stats
        self._rng = rng
        self._liveness = liveness
        self._interrupted = interrupted
        self._notify = notify
        self._on_fault = on_fault
        self.queue = ExpiryQueue()
        self.limits = DownloadLimits(max_bytes=settings.max_result_bytes)

    def put(self, job: Job) -> None:
        assert job.result_expires_at is not None
        self.queue.put(job.result_expires_at, job)

    def resume(self, job: Job) -> None:
        """A result left by a killed or dead runner: it may be stored already."""
        self._resumed.add(job.id)
        self.put(job)

    async def worker(self) -> None:
        while (job := await self.queue.get()) is not None:
            try:
                await self._download(job)
            except LOCAL_FAULTS as exc:
                self._on_fault(exc)  # the job stays `generated`: a rerun fetches it
            finally:
                self.queue.done()
                self._notify()

    def _event(self, job: Job, code: str, started: float, size: int | None = None) -> Event:
        return Event(
            EventKind.DOWNLOAD,
            job_id=job.id,
            batch_id=job.batch_id,
            code=code,
            latency_ms=int((time.monotonic() - started) * 1000),
            size=size,
            worker=self.settings.worker,
        )

    async def _download(self, job: Job) -> None:
        assert job.result_url is not None and job.result_expires_at is not None
        if not await self._owns(job):
            # Taken over while this runner was thought dead: the new owner fetches it.
            log.warning("Job %s was settled elsewhere; its result is not used.", job.id)
            return
        if job.id in self._resumed and await self._found(job):
            return
        tries = 0
        while True:
            if utcnow() >= job.result_expires_at:
                await self.lost(job, URL_EXPIRED, "its URL's lifetime passed before it was fetched")
                return
            started = time.monotonic()
            try:
                written = await fetch_result(
                    self.session,
                    job.result_url,
                    self.sink,
                    job.batch_name,
                    job.external_id,
                    limits=self.limits,
                    expires_at=job.result_expires_at,
                    before_commit=BeforeCommit(
                        confirm=lambda: self._still_ours(job), vouched=self._liveness.fresh
                    ),
                    request_id=job.request_id,
                )
            except TakenOver:
                log.warning("Job %s was settled elsewhere; its result is not used.", job.id)
                return
            except UrlExpired as exc:
                await self.store.record_event(self._event(job, exc.code, started))
                await self.lost(job, exc.code, f"its URL expired ({exc})")
                return
            except (DownloadError, NotAnImage) as exc:
                tries += 1
                code = getattr(exc, "code", RESULT_NOT_AN_IMAGE)
                await self.store.record_event(self._event(job, code, started))
                if tries >= self.settings.download_tries:
                    await self.lost(job, code, f"{tries} downloads failed, the last: {exc}")
                    return
                if self._interrupted():
                    return  # stays `generated`: the rerun fetches it
                await anyio.sleep(min(30.0, 0.5 * 2**tries) * self._rng.uniform(0.5, 1.0))
                continue
            fetched = self._event(job, "OK", started, written.size)
            try:
                await self.store.mark_done(
                    job.id, written.location, written.sha256, written.size, event=fetched
                )
            except JobStateError:
                # Another runner on a shared queue finished it first: same result, same file.
                log.debug("Job %s was already settled elsewhere", job.external_id)
                self.stats.returned += 1  # not this run's job any more
                return
            self.stats.done += 1
            self.stats.downloads += 1
            return

    async def _found(self, job: Job) -> bool:
        """Done without a download: the killed run had stored this paid call's result."""
        self._resumed.discard(job.id)
        found = await self.sink.find(job.batch_name, job.external_id, job.request_id)
        if found is None:
            return False
        try:
            await self.store.mark_done(job.id, found.location, found.sha256, found.size)
        except JobStateError:
            self.stats.returned += 1  # not this run's job any more
            return True
        log.info(
            "Result of %s was already stored (%s): not downloaded again.",
            job.external_id,
            found.location,
        )
        self.stats.done += 1
        return True

    async def _still_ours(self, job: Job) -> None:
        """A download may outlast this runner's claim (a pause past --stale-after): the file
        is written only while the job is still this runner's."""
        if not await self._owns(job):
            raise TakenOver(job.id)

    async def _owns(self, job: Job) -> bool:
        """Soon after this runner renewed its heartbeat no one can have taken its jobs over:
        the database is asked only after a longer gap."""
        return self._liveness.fresh() or await self.store.owns(job.id)

    async def lost(self, job: Job, code: str, why: str, paid: Event | None = None) -> None:
        """The paid result cannot be had: generate it again, within the job's bound."""
        bound = self.settings.max_regenerations
        try:
            again = await self.store.lose_result(
                job.id,
                max_regenerations=bound,
                code=RESULT_LOST,
                message=f"The result was lost ({code}: {why}) after {bound} new generations.",
                paid=paid,
            )
        except JobStateError:
            log.debug("Job %s was already settled elsewhere", job.external_id)
            self.stats.returned += 1  # not this run's job any more
            return
        if again:
            log.info("Result of %s is lost (%s): generating it again.", job.external_id, why)
            self.stats.regenerations += 1
            self.stats.returned += 1
        else:
            log.warning("Job %s failed: its result was lost %d times.", job.external_id, bound + 1)
            self.stats.failed_by_code[RESULT_LOST] += 1

    async def give_linked_jobs_their_files(self) -> None:
        """A job finished from an identical job's result gets its own `<batch>/<id>` file."""
        for job in await self.store.linked_results(self.settings.batch):
            if not job.output_path:
                continue
            copied = await self.sink.give_copy(job.output_path, job.batch_name, job.external_id)
            if copied is not None:
                await self.store.set_output_path(job.id, copied)
