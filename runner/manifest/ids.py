"""Remembering every id of a manifest in bounded memory."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import unicodedata

MEMORY_IDS = 50_000
"""Ids held in a dict (about 7 MB); past that, all of them are kept in a scratch file."""


def id_key(ident: str) -> str:
    """What two spellings of one id share: Unicode's canonical caseless match, so `A` and
    `a`, or "café" with é as one code point or two, are one id (one file on macOS and
    Windows)."""
    if ident.isascii():
        return ident.lower()  # casefold and NFD change nothing else in ASCII
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", ident).casefold())


class IdRegistry:
    """The ids seen so far: in a dict up to `memory_ids` (most manifests never touch a
    file), then, moved there in one go, in a scratch SQLite file, so memory stays flat at
    any size.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, memory_ids: int = MEMORY_IDS) -> None:
        self._limit = memory_ids
        self._lines: dict[str, int] = {}  # key -> first line
        self._shown: dict[str, str] = {}  # key -> first spelling, where it is not the key
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    def claim(self, ident: str, line: int) -> tuple[int, str] | None:
        """Note `ident` as used on `line`; if it was used before: (first line, first spelling)."""
        key = id_key(ident)
        if self._db is not None:
            return self._claim_in_file(self._db, key, ident, line)
        first = self._lines.get(key)
        if first is not None:
            return first, self._shown.get(key, key)
        self._lines[key] = line
        if ident != key:
            self._shown[key] = ident
        if len(self._lines) >= self._limit:
            self._move_to_file()
        return None

    @staticmethod
    def _claim_in_file(
        db: sqlite3.Connection, key: str, ident: str, line: int
    ) -> tuple[int, str] | None:
        cur = db.execute(
            "INSERT INTO ids (key, line, shown) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, line, ident),
        )
        if cur.rowcount == 1:
            return None
        first = db.execute("SELECT line, shown FROM ids WHERE key = ?", (key,)).fetchone()
        return int(first[0]), str(first[1])

    def _move_to_file(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="changeclothes-ids-")
        db = sqlite3.connect(os.path.join(self._dir.name, "ids.sqlite"), isolation_level=None)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-4096")  # KiB: a 4 MB page cache at most
        db.execute(
            "CREATE TABLE ids (key TEXT PRIMARY KEY, line INTEGER NOT NULL, "
            "shown TEXT NOT NULL) WITHOUT ROWID"
        )
        db.execute("BEGIN")  # never committed: the file is thrown away
        lines, shown = self._lines, self._shown
        db.executemany(
            "INSERT INTO ids (key, line, shown) VALUES (?, ?, ?)",
            [(key, lines[key], shown.get(key, key)) for key in sorted(lines)],
        )
        self._db = db
        self._lines = {}
        self._shown = {}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._lines.clear()
        self._shown.clear()

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
