"""Remembering every id of a manifest without holding them in memory."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import unicodedata


class IdRegistry:
    """The ids seen so far, kept in a scratch SQLite file so memory stays flat at any size.

    Ids are compared case-insensitively and whatever their Unicode normal form: `A` and `a`,
    or "café" with é as one code point or two, would be the same file on macOS and Windows.
    Use as a context manager, or call `close()`.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="changeclothes-ids-")
        self._db = sqlite3.connect(os.path.join(self._dir.name, "ids.sqlite"), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-4096")  # KiB: a 4 MB page cache at most
        self._db.execute(
            "CREATE TABLE ids (key TEXT PRIMARY KEY, line INTEGER NOT NULL, "
            "shown TEXT NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")  # never committed: the file is thrown away

    def claim(self, ident: str, line: int) -> tuple[int, str] | None:
        """Note `ident` as used on `line`; if it was used before: (first line, first spelling)."""
        # Unicode's canonical caseless match: NFC and NFD spellings are one id, too.
        key = unicodedata.normalize("NFD", unicodedata.normalize("NFD", ident).casefold())
        cur = self._db.execute(
            "INSERT INTO ids (key, line, shown) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, line, ident),
        )
        if cur.rowcount == 1:
            return None
        first = self._db.execute("SELECT line, shown FROM ids WHERE key = ?", (key,)).fetchone()
        return int(first[0]), str(first[1])

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
