"""Remembering every id of a manifest in bounded memory."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import unicodedata

MEMORY_IDS = 50_000
"""Ids held in memory (about 7 MB) before they are moved to a scratch file."""
_FILTER_BITS = 1 << 24  # 2 MB: about 1 % false positives at a million moved ids
_MASK = _FILTER_BITS - 1


def id_key(ident: str) -> str:
    """What two spellings of one id share: Unicode's canonical caseless match, so `A` and
    `a`, or "café" with é as one code point or two, are one id (one file on macOS and
    Windows)."""
    if ident.isascii():
        return ident.lower()  # casefold and NFD change nothing else in ASCII
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", ident).casefold())


class IdRegistry:
    """The ids seen so far: in a dict up to `memory_ids`, then moved in bulk to a scratch
    SQLite file, so memory stays flat at any size. A bit filter of the moved ids answers
    "never seen" without reading the file; only a possible repeat is looked up there.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, memory_ids: int = MEMORY_IDS) -> None:
        self._limit = memory_ids
        self._lines: dict[str, int] = {}  # key -> first line
        self._shown: dict[str, str] = {}  # key -> first spelling, where it is not the key
        self._bits: bytearray | None = None  # the filter, once ids have been moved
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    def claim(self, ident: str, line: int) -> tuple[int, str] | None:
        """Note `ident` as used on `line`; if it was used before: (first line, first spelling)."""
        key = id_key(ident)
        first = self._lines.get(key)
        if first is not None:
            return first, self._shown.get(key, key)
        if self._bits is not None and self._may_have_moved(key):
            row = self._file().execute("SELECT line, shown FROM ids WHERE key = ?", (key,))
            found = row.fetchone()
            if found is not None:
                return int(found[0]), str(found[1])
        self._lines[key] = line
        if ident != key:
            self._shown[key] = ident
        if len(self._lines) >= self._limit:
            self._move_to_file()
        return None

    def _may_have_moved(self, key: str) -> bool:
        h = hash(key)
        a, b = h & _MASK, (h >> 32) & _MASK
        bits = self._bits
        assert bits is not None
        return bool(bits[a >> 3] & (1 << (a & 7)) and bits[b >> 3] & (1 << (b & 7)))

    def _move_to_file(self) -> None:
        if self._bits is None:
            self._bits = bytearray(_FILTER_BITS // 8)
        bits = self._bits
        for key in self._lines:
            h = hash(key)
            a, b = h & _MASK, (h >> 32) & _MASK
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)
        shown = self._shown
        self._file().executemany(
            "INSERT INTO ids (key, line, shown) VALUES (?, ?, ?)",
            sorted((key, line, shown.get(key, key)) for key, line in self._lines.items()),
        )
        self._lines.clear()
        self._shown.clear()

    def _file(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = tempfile.TemporaryDirectory(prefix="changeclothes-ids-")
            db = sqlite3.connect(os.path.join(self._dir.name, "ids.sqlite"), isolation_level=None)
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-1024")  # KiB: ids go in sorted, a small cache does
            db.execute(
                "CREATE TABLE ids (key TEXT PRIMARY KEY, line INTEGER NOT NULL, "
                "shown TEXT NOT NULL) WITHOUT ROWID"
            )
            db.execute("BEGIN")  # never committed: the file is thrown away
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._lines.clear()
        self._shown.clear()
        self._bits = None

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
