"""Fetching result URLs: earliest expiry first, in a pool of their own.

Nothing a result host sends is trusted: a download stops at `max_bytes`, follows a few
redirects at most, and is bounded in time as a whole and between reads. Each outcome is an
exception type of its own, so the scheduler can tell "generate again" from "try again".
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from yarl import URL

from runner.api import errors
from runner.api.request import MAX_RESULT_BYTES
from runner.clock import utcnow
from runner.scheduler.files import BeforeCommit, IncompleteFile, NotAnImage

if TYPE_CHECKING:
    from runner.scheduler.sinks import ResultSink, StoredResult

# Object storage answers an expired signed URL with 403 (some CDNs with 404 or 410); before
# the URL's lifetime has passed, these are failures like any other.
EXPIRED_STATUSES = frozenset({403, 404, 410})
CHUNK = 64 * 1024


@dataclass(frozen=True)
class DownloadLimits:
    """What one result download may cost. Seconds for the times."""

    max_bytes: int = MAX_RESULT_BYTES
    max_redirects: int = 5
    connect: float = 10.0
    read: float = 30.0  # the longest silence between two reads
    total: float = 300.0  # the whole download: bounds a host that drips bytes

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.read
        )


class DownloadError(Exception):
    """A result download that gave no file. `code` is a ClientError.* code of the error
    table; `status` the result host's HTTP status, when it answered with one."""

    code: str = errors.DOWNLOAD_CONNECTION

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status


class UrlExpired(DownloadError):
    """The host refused the URL (403/404/410) after its lifetime had passed: the job must be
    generated again."""

    code = errors.URL_EXPIRED


class DownloadFailed(DownloadError):
    """A passing failure (an HTTP error, a 403 before expiry, a reset, a timeout, a truncated
    body, a redirect loop): try the same URL again while it is valid."""


class ResultTooLarge(DownloadError, NotAnImage):
    """The result is larger than `max_bytes`: a bad result, like one that is not an image.
    Nothing is left on disk."""

    code = errors.RESULT_TOO_LARGE


def url_expiry(url: str) -> datetime | None:
    """The expiry a signed URL states for itself, if it states one: Tencent COS
    (`q-sign-time=start;end`), S3 (`X-Amz-Date` + `X-Amz-Expires`) or `Expires=<epoch>`."""
    try:
        query = URL(url).query
        if "q-sign-time" in query:
            return datetime.fromtimestamp(int(query["q-sign-time"].split(";")[1]), UTC)
        if "X-Amz-Date" in query and "X-Amz-Expires" in query:
            signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return signed + timedelta(seconds=int(query["X-Amz-Expires"]))
        if "Expires" in query:
            return datetime.fromtimestamp(int(query["Expires"]), UTC)
    except (ValueError, IndexError, OverflowError, OSError):
        return None
    return None


@dataclass(order=True)
class _Entry:
    expires_at: datetime
    seq: int
    item: Any = field(compare=False)


class ExpiryQueue:
    """A priority queue of downloads ordered by URL expiry; `get` waits for work."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._changed = anyio.Event()
        self._closed = False
        self.active = 0  # items taken and not yet finished

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def idle(self) -> bool:
        return not self._heap and self.active == 0

    def put(self, expires_at: datetime, item: Any) -> None:
        heapq.heappush(self._heap, _Entry(expires_at, next(self._seq), item))
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def done(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def get(self) -> Any | None:
        """The item with the earliest expiry, or None once closed and empty."""
        while True:
            if self._heap:
                self.active += 1
                return heapq.heappop(self._heap).item
            if self._closed:
                return None
            await self._changed.wait()


async def fetch_result(
    session: aiohttp.ClientSession,
    url: str,
    sink: ResultSink,
    batch: str,
    stem: str,
    *,
    limits: DownloadLimits = DownloadLimits(),
    expires_at: datetime | None = None,
    now: Callable[[], datetime] = utcnow,
    before_commit: BeforeCommit | None = None,
    request_id: str | None = None,
) -> StoredResult:
    """Download `url` into `sink` as `batch/stem.<ext>`, whole or not at all (`before_commit`
    may raise to keep it from its final place).

    Raises UrlExpired (only once `expires_at` or the URL's own expiry has passed),
    DownloadFailed, ResultTooLarge or NotAnImage; never leaves a file over `limits.max_bytes`.
    """
    try:
        async with session.get(
            url, max_redirects=limits.max_redirects, timeout=limits.to_aiohttp()
        ) as resp:
            if resp.status != 200:
                raise _refused(resp.status, _earliest(expires_at, url_expiry(url)), now())
            declared = resp.content_length
            if declared is not None and declared > limits.max_bytes:
                resp.close()  # drop the connection rather than drain the body
                raise ResultTooLarge(
                    f"the host announces {declared} bytes, more than the cap of {limits.max_bytes}"
                )
            return await sink.store(
                batch,
                stem,
                _capped(resp, limits.max_bytes),
                resp.headers.get("Content-Type"),
                declared,
                request_id=request_id,
                before_commit=before_commit,
            )
    except IncompleteFile as exc:
        raise DownloadFailed(str(exc), code=errors.DOWNLOAD_TRUNCATED) from None
    except aiohttp.ClientPayloadError as exc:
        raise DownloadFailed(_describe(exc), code=errors.DOWNLOAD_TRUNCATED) from None
    except (aiohttp.TooManyRedirects, aiohttp.RedirectClientError) as exc:
        history = exc.history if isinstance(exc, aiohttp.ClientResponseError) else ()
        status = history[-1].status if history else None  # the last redirect's status
        raise DownloadFailed(
            _describe(exc), code=errors.DOWNLOAD_REDIRECTS, status=status
        ) from None
    except TimeoutError as exc:
        raise DownloadFailed(_describe(exc), code=errors.DOWNLOAD_TIMEOUT) from None
    except aiohttp.ClientError as exc:
        raise DownloadFailed(_describe(exc), code=errors.DOWNLOAD_CONNECTION) from None


def _refused(status: int, expires_at: datetime | None, now: datetime) -> DownloadError:
    if status in EXPIRED_STATUSES and expires_at is not None and now >= expires_at:
        return UrlExpired(f"HTTP {status} after the URL expired", status=status)
    return DownloadFailed(f"HTTP {status}", code=errors.DOWNLOAD_HTTP_STATUS, status=status)


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


async def _capped(resp: aiohttp.ClientResponse, max_bytes: int) -> AsyncIterator[bytes]:
    """The body in chunks; ResultTooLarge as soon as more than `max_bytes` arrive, so the
    temporary file never grows past the cap (write_stream removes it)."""
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            resp.close()
            raise ResultTooLarge(f"the result is longer than the cap of {max_bytes} bytes")
        yield chunk


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
