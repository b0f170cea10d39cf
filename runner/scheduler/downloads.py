"""Fetching result URLs: earliest expiry first, in a pool of their own."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from runner.scheduler.files import IncompleteFile, WrittenFile, write_stream

# Object storage answers an expired signed URL with 403 (some CDNs with 404 or 410).
EXPIRED_STATUSES = frozenset({403, 404, 410})
CHUNK = 64 * 1024


class UrlExpired(Exception):
    """The result URL no longer serves the image: the job must be generated again."""


class DownloadFailed(Exception):
    """A passing failure (5xx, reset, timeout): try the same URL again while it is valid."""


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
    session: aiohttp.ClientSession, url: str, folder: Path, stem: str
) -> WrittenFile:
    """Download `url` into `folder/stem.<ext>`, whole or not at all."""
    try:
        async with session.get(url) as resp:
            if resp.status in EXPIRED_STATUSES:
                raise UrlExpired(f"HTTP {resp.status}")
            if resp.status != 200:
                raise DownloadFailed(f"HTTP {resp.status}")

            async def chunks() -> AsyncIterator[bytes]:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    yield chunk

            return await write_stream(
                folder, stem, chunks(), resp.headers.get("Content-Type"), resp.content_length
            )
    except IncompleteFile as exc:
        raise DownloadFailed(str(exc)) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise DownloadFailed(f"{type(exc).__name__}: {exc}") from None
