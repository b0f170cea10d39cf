"""The download side of a run: a pool of workers that fetch result URLs, earliest expiry
first, so the paid API slots never wait on a download."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio

from runner.clock import utcnow
from runner.scheduler.downloads import DownloadFailed, ExpiryQueue, UrlExpired, fetch_result
from runner.scheduler.files import NotAnImage
from runner.scheduler.settings import RunSettings, RunStats
from runner.store import Event, EventKind, Job, JobStateError, Store

log = logging.getLogger(__name__)


class Downloads:
    """Generated results waiting for their download, and the workers that fetch them."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        settings: RunSettings,
        stats: RunStats,
        rng: random.Random,
        interrupted: Callable[[], bool],
        notify: Callable[[], None],
    ) -> None:
        self.store = store
        self.session = session
        self.settings = settings
        self.stats = stats
        self._rng = rng
        self._interrupted = interrupted
        self._notify = notify
        self.queue = ExpiryQueue()

    def folder(self, job: Job) -> Path:
        return self.settings.out_dir / job.batch_name

    def put(self, job: Job) -> None:
        assert job.result_expires_at is not None
        self.queue.put(job.result_expires_at, job)

    async def worker(self) -> None:
        while (job := await self.queue.get()) is not None:
            try:
                await self._download(job)
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
        tries = 0
        while True:
            if utcnow() >= job.result_expires_at:
                await self._expired(job, "the URL's lifetime passed before it was fetched")
                return
            started = time.monotonic()
            try:
                written = await fetch_result(
                    self.session, job.result_url, self.folder(job), job.external_id
                )
            except UrlExpired as exc:
                await self._expired(job, str(exc))
                return
            except (DownloadFailed, NotAnImage) as exc:
                tries += 1
                await self.store.record_event(self._event(job, type(exc).__name__, started))
                if tries >= self.settings.download_tries:
                    await self._expired(job, f"{tries} failed downloads: {exc}")
                    return
                if self._interrupted():
                    return  # stays `generated`: the rerun fetches it
                await anyio.sleep(min(30.0, 0.5 * 2**tries) * self._rng.uniform(0.5, 1.0))
                continue
            fetched = self._event(job, "OK", started, written.size)
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
