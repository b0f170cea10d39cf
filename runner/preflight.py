"""Image preflight: fetch every distinct input image of a manifest before a night is spent
on it, and say per row what the API would refuse. No API call is made.

Fetches are bounded (a few at a time, a timeout each, at most the largest file the API could
take plus one byte read); each image is judged by the limits on the API's page: each side
more than 512 and less than 3000 pixels, under 8 MB once Base64 encoded. Verdicts on fetched
content are cached by URL in the queue database (`runner.store.images`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiohttp
import anyio
from PIL import Image, UnidentifiedImageError

from runner.manifest import ManifestError, ManifestReader, Problem
from runner.objects import ObjectRef, ObjectStoreError, is_bucket_url
from runner.objects.errors import ObjectTooLarge
from runner.store.images import ImageCheck, cached_checks, save_checks
from runner.store.queue import Store
from runner.store.reports import ReportData

if TYPE_CHECKING:
    from runner.objects.client import ObjectStore

MIN_SIDE = 512  # exclusive
MAX_SIDE = 3000  # exclusive
MAX_BASE64_BYTES = 8 * 1024 * 1024  # exclusive
MAX_FILE_BYTES = (MAX_BASE64_BYTES - 1) // 4 * 3  # the largest file under that once encoded
FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
CONCURRENCY = 8
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10, sock_read=30)
THUMB_SIDE = 160
MAX_PROBLEMS = 50


def inspect_image(url: str, data: bytes) -> ImageCheck:
    """Judge fetched bytes (in a worker thread: decoding is CPU work)."""
    base = {
        "url": url,
        "http_status": 200,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if 4 * ((len(data) + 2) // 3) >= MAX_BASE64_BYTES:
        return ImageCheck(problem="larger than 8 MB once Base64 encoded", **base)  # type: ignore[arg-type]
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            fmt = image.format
            if not (MIN_SIDE < width < MAX_SIDE and MIN_SIDE < height < MAX_SIDE):
                problem = (
                    f"{width}x{height} px: each side must be more than {MIN_SIDE} and less "
                    f"than {MAX_SIDE} px"
                )
                return ImageCheck(problem=problem, width=width, height=height, format=fmt, **base)  # type: ignore[arg-type]
            # Within the limits the pixel count is bounded (< 9 Mpx): safe to decode.
            image.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=70)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return ImageCheck(problem="not an image (JPEG, PNG, WebP or BMP)", **base)  # type: ignore[arg-type]
    except (OSError, ValueError, SyntaxError) as exc:
        return ImageCheck(problem=f"not a decodable image ({exc})", **base)  # type: ignore[arg-type]
    return ImageCheck(
        width=width,
        height=height,
        format=fmt,
        thumbnail=out.getvalue(),
        **base,  # type: ignore[arg-type]
    )


async def _fetch(session: aiohttp.ClientSession, url: str) -> ImageCheck:
    if is_local_file(url):
        return await anyio.to_thread.run_sync(_read_local, url)
    try:
        async with session.get(url, timeout=TIMEOUT, max_redirects=5) as resp:
            if resp.status != 200:
                return ImageCheck(url, f"unreachable (HTTP {resp.status})", resp.status)
            if resp.content_length is not None and resp.content_length > MAX_FILE_BYTES:
                return ImageCheck(url, "larger than 8 MB once Base64 encoded", 200)
            data = await resp.content.read(MAX_FILE_BYTES + 1)
    except TimeoutError:
        return ImageCheck(url, "unreachable (timed out)")
    except aiohttp.TooManyRedirects:
        return ImageCheck(url, "unreachable (too many redirects)")
    except (aiohttp.ClientError, ValueError) as exc:
        return ImageCheck(url, f"unreachable ({type(exc).__name__})")
    return await anyio.to_thread.run_sync(inspect_image, url, data)


def is_local_file(url: str) -> bool:
    return url[:7].lower() == "file://"


def in_bucket(url: str) -> bool:
    return url[:5].lower() == "s3://"


def _read_local(url: str) -> ImageCheck:
    """A local photo `validate` was given (`file://`), judged as a fetched one."""
    path = Path(unquote(urlsplit(url).path))
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return ImageCheck(url, f"unreadable ({exc.strerror or exc})")
    return inspect_image(url, data)


async def check_images(urls: Iterable[str], concurrency: int = CONCURRENCY) -> list[ImageCheck]:
    """Fetch and judge each URL, `concurrency` at a time."""
    limit = anyio.Semaphore(concurrency)
    results: list[ImageCheck] = []

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        async with limit:
            results.append(await _fetch(session, url))

    async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(one, session, url)
    return results


@dataclass(frozen=True)
class RowVerdict:
    line: int
    id: str
    problems: list[str]

    def __str__(self) -> str:
        return f"line {self.line} (id {self.id}): {'; '.join(self.problems)}"


@dataclass
class Preflight:
    """What the preflight found: manifest problems, then the rows with refused images."""

    rows: int = 0
    manifest_problems: list[Problem] = field(default_factory=list)
    manifest_problem_count: int = 0
    refused: list[RowVerdict] = field(default_factory=list)  # every row with an image problem
    images: int = 0  # distinct input URLs
    fetched: int = 0  # ... fetched now (the rest came from the cache)
    in_bucket: int = 0  # distinct s3:// inputs, not fetched (checked when uploaded)
    checks: dict[str, ImageCheck] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.manifest_problem_count and not self.refused


async def preflight_manifest(
    path: Path,
    *,
    fmt: str | None,
    base_url: str | None,
    store: Store | None = None,
    concurrency: int = CONCURRENCY,
) -> Preflight:
    """Read the manifest, then check the model and garment image of every valid row (from
    `store`'s cache where it has them; fresh verdicts go into it)."""
    result = Preflight()
    rows: list[tuple[int, str, str, str]] = []

    def read() -> None:
        with ManifestReader(path, fmt=fmt, base_url=base_url) as reader:
            try:
                for item in reader:
                    if isinstance(item, Problem):
                        result.manifest_problem_count += 1
                        if len(result.manifest_problems) < MAX_PROBLEMS:
                            result.manifest_problems.append(item)
                    else:
                        rows.append((item.line, item.id, item.model_url, item.clothes_url))
            except ManifestError as exc:
                result.manifest_problems.extend(exc.problems)
                result.manifest_problem_count += exc.count

    await anyio.to_thread.run_sync(read)
    result.rows = len(rows)
    every = {u for _, _, model, clothes in rows for u in (model, clothes)}
    # Objects in a bucket were judged when `submit --upload` put them there; a URL to fetch
    # them would have to be presigned, which is `run`'s job, so they are counted, not fetched.
    urls = sorted(u for u in every if not in_bucket(u))
    result.in_bucket = len(every) - len(urls)
    result.images = len(urls)
    checks = await cached_checks(store, urls) if store is not None else {}
    fresh = await check_images([u for u in urls if u not in checks], concurrency)
    result.fetched = len(fresh)
    if store is not None:  # a local file may change under its name: never cached
        await save_checks(store, [c for c in fresh if not is_local_file(c.url)])
    checks.update({c.url: c for c in fresh})
    result.checks = checks
    for line, ident, model, clothes in rows:
        problems = [
            f"{name} {checks[url].problem}: {url}"
            for name, url in (("model_url", model), ("clothes_url", clothes))
            if url in checks and not checks[url].ok
        ]
        if problems:
            result.refused.append(RowVerdict(line, ident, problems))
    return result


async def fetch_thumbnails(
    store: Store, urls: Iterable[str], concurrency: int = CONCURRENCY
) -> dict[str, bytes]:
    """Check the `urls` (none of them cached yet) and keep the verdicts; returns the
    thumbnails of those that are images."""
    fresh = await check_images(urls, concurrency)
    await save_checks(store, fresh)
    return {c.url: c.thumbnail for c in fresh if c.thumbnail}


async def _check_object(objects: ObjectStore, url: str) -> ImageCheck:
    """An `s3://` input photo, read from its bucket and judged like a fetched one."""
    try:
        data = await objects.get_bytes(ObjectRef.parse(url), max_bytes=MAX_FILE_BYTES)
    except ObjectTooLarge:
        return ImageCheck(url, "larger than 8 MB once Base64 encoded", 200)
    except (ObjectStoreError, ValueError) as exc:
        return ImageCheck(url, f"unreadable ({exc})")
    return await anyio.to_thread.run_sync(inspect_image, url, data)


async def check_objects(
    objects: ObjectStore, urls: Iterable[str], concurrency: int = CONCURRENCY
) -> list[ImageCheck]:
    limit = anyio.Semaphore(concurrency)
    results: list[ImageCheck] = []

    async def one(url: str) -> None:
        async with limit:
            results.append(await _check_object(objects, url))

    async with anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(one, url)
    return results


async def add_input_thumbnails(
    store: Store, data: ReportData, objects: ObjectStore | None = None
) -> None:
    """Give a report's review sheet the inputs the preflight has not cached yet (fetched
    once, then cached): a reviewer judges a try-on beside its model and garment. `s3://`
    inputs are read from their bucket through `objects` (left without one when None)."""
    urls = {u for b in data.batches for j in b.sheet for u in (j.model_url, j.clothes_url)}
    missing = urls - data.thumbnails.keys()
    in_buckets = sorted(u for u in missing if is_bucket_url(u))
    missing -= set(in_buckets)
    if missing:
        data.thumbnails.update(await fetch_thumbnails(store, sorted(missing)))
    if in_buckets and objects is not None:
        fresh = await check_objects(objects, in_buckets)
        # Only verdicts on content are kept: a bucket unreadable today may be readable tomorrow.
        await save_checks(store, [c for c in fresh if c.http_status == 200])
        data.thumbnails.update({c.url: c.thumbnail for c in fresh if c.thumbnail})


def refused_lines(verdicts: Sequence[RowVerdict]) -> dict[int, str]:
    """{line: its problems in one message}, for a submit to skip those rows."""
    return {v.line: "; ".join(v.problems) for v in verdicts}


__all__ = ["ImageCheck", "Preflight", "RowVerdict", "check_images", "preflight_manifest"]
