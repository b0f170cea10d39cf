"""Result images kept for `RspImgType=url`, each under an unguessable name until its TTL ends.

Held in memory; an expired result's bytes are dropped at once (only its name is remembered,
boundedly, so its URL keeps answering "expired" rather than "never existed").
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

REMEMBER_EXPIRED = 100_000


class Lookup(Enum):
    FOUND = "found"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoredResult:
    token: str
    data: bytes
    sha256: str
    expires_at: float  # on the store's clock


class ResultStore:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._live: dict[str, StoredResult] = {}  # insertion order is expiry order
        self._expired: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._live)

    def add(self, data: bytes) -> StoredResult:
        self.purge()
        token = secrets.token_urlsafe(24)
        result = StoredResult(
            token=token,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            expires_at=self._clock() + self.ttl,
        )
        self._live[token] = result
        return result

    def purge(self) -> None:
        """Drop every result whose time is up."""
        now = self._clock()
        while self._live:
            token = next(iter(self._live))
            if self._live[token].expires_at > now:
                break
            del self._live[token]
            self._expired[token] = None
            if len(self._expired) > REMEMBER_EXPIRED:
                del self._expired[next(iter(self._expired))]

    def lookup(self, token: str) -> tuple[Lookup, StoredResult | None]:
        self.purge()
        result = self._live.get(token)
        if result is not None:
            return Lookup.FOUND, result
        if token in self._expired:
            return Lookup.EXPIRED, None
        return Lookup.UNKNOWN, None

    def clear(self) -> None:
        self._live.clear()
        self._expired.clear()
