"""What the report needs from a bucket: each result's thumbnail, fetched when the report is
made (bounded in size, a few at a time), and a presigned link to the full-size object.

A presigned link is signed material: anyone holding the report can open the result until the
link expires (`--link-ttl`). They are made here, written into the report only, and never
stored, logged or printed elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio

from runner.clock import utcnow
from runner.objects import ObjectRef, ObjectStoreError, is_bucket_url
from runner.objects.client import ObjectStore
from runner.objects.errors import ObjectTooLarge
from runner.report_sheet import thumbnail_uri
from runner.store.reports import ReportData

log = logging.getLogger(__name__)

# The largest result fetched for a thumbnail (run's default --max-result-bytes); a larger
# object gets a link but no thumbnail.
MAX_FETCH_BYTES = 50 * 1024 * 1024
CONCURRENCY = 8


@dataclass(frozen=True)
class BucketResult:
    thumbnail: str | None  # a data: URI, None when it could not be made
    href: str | None  # the presigned GET
    missing: bool  # the object could not be read (gone, or refused)


@dataclass
class BucketLinks:
    """The report's bucket results by their recorded `s3://` reference."""

    expires_at: datetime
    results: dict[str, BucketResult] = field(default_factory=dict)
    failures: int = 0
    first_error: str | None = None  # what went wrong first, for the one warning line

    def failed(self, exc: ObjectStoreError) -> None:
        self.failures += 1
        self.first_error = self.first_error or str(exc)


def bucket_results_of(data: ReportData) -> list[str]:
    """The `s3://` results the report's review sheets show."""
    return sorted(
        {
            j.output_path
            for b in data.batches
            for j in b.sheet
            if j.output_path and is_bucket_url(j.output_path)
        }
    )


def bucket_inputs_of(data: ReportData) -> list[str]:
    """The `s3://` input photos of the sheets that have no thumbnail yet."""
    urls = {u for b in data.batches for j in b.sheet for u in (j.model_url, j.clothes_url)}
    return sorted(u for u in urls - data.thumbnails.keys() if is_bucket_url(u))


async def fetch_bucket_results(
    objects: ObjectStore, locations: Iterable[str], link_ttl: int
) -> BucketLinks:
    links = BucketLinks(expires_at=utcnow() + timedelta(seconds=link_ttl))
    limit = anyio.Semaphore(CONCURRENCY)

    async def one(location: str) -> None:
        async with limit:
            links.results[location] = await _one(objects, location, link_ttl, links)

    async with anyio.create_task_group() as tg:
        for location in locations:
            tg.start_soon(one, location)
    return links


async def _one(objects: ObjectStore, location: str, ttl: int, links: BucketLinks) -> BucketResult:
    try:
        ref = ObjectRef.parse(location)
    except ValueError:
        return BucketResult(None, None, True)
    try:
        href = await objects.presign_get(ref, ttl)
    except ObjectStoreError as exc:
        links.failed(exc)
        log.debug("No link for %s: %s", ref, exc)
        href = None
    try:
        data = await objects.get_bytes(ref, max_bytes=MAX_FETCH_BYTES)
    except ObjectTooLarge:
        return BucketResult(None, href, False)
    except ObjectStoreError as exc:
        links.failed(exc)
        log.debug("No thumbnail for %s: %s", ref, exc)
        return BucketResult(None, None, True)
    thumbnail = await anyio.to_thread.run_sync(thumbnail_uri, data)
    return BucketResult(thumbnail, href, False)
