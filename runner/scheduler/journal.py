"""A journal of paid results not yet in the database.

The API slot is the account's money: it should go to the next job the moment a result
arrives, but a result must not be lost if the process is killed before the database has it.
So the result is first appended to a small file in the output folder (one JSON line, written
straight to the OS: it survives a killed process, as the WAL database does), the slot is
freed, and the database write follows. At the next start, journals whose process is gone
(their lock is free) are replayed into the database and removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.atomic import naming

PREFIX = ".changeclothes-paid-"
SUFFIX = ".jsonl"
TRUNCATE_BYTES = 1024 * 1024


class PaidJournal:
    """This process's journal, locked for as long as the process lives."""

    def __init__(self, folder: Path, worker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in worker)
        self.path = folder / f"{PREFIX}{safe}{SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._pending = 0  # entries appended and not yet in the database
        self._size = 0

    def append(
        self,
        job_id: int,
        result_url: str,
        expires_at: datetime,
        request_id: str,
        event: dict[str, Any],
    ) -> None:
        line = json.dumps(
            {
                "job_id": job_id,
                "result_url": result_url,
                "expires_at": expires_at.isoformat(),
                "request_id": request_id,
                "event": event,
            }
        )
        with naming(self.path):
            self._size += os.write(self._fd, line.encode() + b"\n")
        self._pending += 1

    def stored(self) -> None:
        """One entry reached the database. When none is waiting, a grown journal is emptied,
        so a night of a million results does not leave a file of that size."""
        self._pending -= 1
        if self._pending == 0 and self._size > TRUNCATE_BYTES:
            with naming(self.path):
                os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self) -> None:
        """Every entry is in the database by now: the journal goes."""
        self.path.unlink(missing_ok=True)
        os.close(self._fd)

    def keep(self) -> None:
        """The run broke off: leave the journal for the next start to replay."""
        os.close(self._fd)


def orphaned_entries(folder: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Journals left by processes that are gone, with their entries (a torn last line is
    skipped: its result never got a slot back, so the call counts as lost, as before)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"{PREFIX}*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is still running
            entries = []
            with os.fdopen(os.dup(fd), "rb") as fh:
                for raw in fh:
                    with contextlib.suppress(ValueError):
                        entries.append(json.loads(raw))
            yield path, entries
        finally:
            os.close(fd)
