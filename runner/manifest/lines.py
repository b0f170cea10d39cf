"""A manifest's physical lines: decoded one by one, each fault noted against its line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO

from runner.manifest.errors import ManifestError
from runner.manifest.rows import Problem

MAX_LINE_BYTES = 12 * 1024 * 1024  # a Base64 logo of up to 8 MB fits on one line


class Lines:
    """Physical lines of a UTF-8 file, decoded one by one, with the problems of each line.

    A line that is not UTF-8 or is too long is not fatal: it is noted in `pending` for the
    record being read, and reading goes on, so one bad line gets one message.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.number = 0
        self.bytes_read = 0
        self.digest = hashlib.sha256()
        self.pending: list[Problem] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self._fh.readline(MAX_LINE_BYTES)
        if not raw:
            raise StopIteration
        self.number += 1
        self._take(raw)
        if self.number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise ManifestError([Problem(1, "the file is UTF-16; save it as UTF-8")])
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # skip the rest of the over-long line
                more = self._fh.readline(MAX_LINE_BYTES)
                self._take(more)
                if not more or more.endswith(b"\n"):
                    break
            self.pending.append(
                Problem(self.number, f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MB")
            )
            return "\n"
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.pending.append(
                Problem(self.number, f"not valid UTF-8 text (byte {exc.start + 1} of the line)")
            )
            return raw.decode("utf-8", errors="replace")

    def _take(self, raw: bytes) -> None:
        self.bytes_read += len(raw)
        self.digest.update(raw)

    def take_pending(self) -> Problem | None:
        if not self.pending:
            return None
        first = self.pending[0]
        self.pending.clear()
        return first
