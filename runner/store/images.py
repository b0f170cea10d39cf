"""The image preflight's cache: what was learned about each input URL, kept in the queue
database so a rerun does not fetch it again and the report can show the inputs."""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from runner.clock import utcnow
from runner.store.models import image_checks
from runner.store.queue import Store

_CHUNK = 500  # URLs per IN (...) query


@dataclass(frozen=True)
class ImageCheck:
    """One input URL as the preflight saw it. `problem` is None when the API would take it."""

    url: str
    problem: str | None = None
    http_status: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    thumbnail: builtins.bytes | None = None  # a small JPEG (`bytes` is a field here)
    checked_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def cacheable(self) -> bool:
        """Only a verdict on content that was fetched is kept: an unreachable URL may be
        fixed by the next run, and is fetched again then."""
        return self.http_status == 200


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


_COLUMNS = ("problem", "http_status", "width", "height", "format", "bytes", "sha256", "thumbnail")


async def cached_checks(store: Store, urls: Iterable[str]) -> dict[str, ImageCheck]:
    """The cached checks of `urls`, by URL (those never checked are absent)."""
    wanted = {url_key(u): u for u in urls}
    keys = sorted(wanted)
    found: dict[str, ImageCheck] = {}
    async with store.transaction() as conn:
        for i in range(0, len(keys), _CHUNK):
            query = sa.select(image_checks).where(
                image_checks.c.url_sha256.in_(keys[i : i + _CHUNK])
            )
            for row in (await conn.execute(query)).mappings():
                url = wanted[row["url_sha256"]]
                thumb = row["thumbnail"]
                found[url] = ImageCheck(
                    url,
                    **{c: row[c] for c in _COLUMNS if c != "thumbnail"},
                    thumbnail=None if thumb is None else bytes(thumb),
                    checked_at=row["checked_at"],
                )
    return found


async def save_checks(store: Store, checks: Iterable[ImageCheck]) -> int:
    """Keep the cacheable checks (replacing earlier ones of the same URL); returns how many."""
    now = utcnow()
    rows = [
        {
            "url_sha256": url_key(c.url),
            "url": c.url,
            "checked_at": now,
            **{col: getattr(c, col) for col in _COLUMNS},
        }
        for c in checks
        if c.cacheable
    ]
    if not rows:
        return 0
    async with store.transaction(immediate=True) as conn:
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            keys = [r["url_sha256"] for r in chunk]
            await conn.execute(sa.delete(image_checks).where(image_checks.c.url_sha256.in_(keys)))
            await conn.execute(sa.insert(image_checks), chunk)
    return len(rows)
