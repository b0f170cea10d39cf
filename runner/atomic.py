"""Writing a file so that a reader, or a crash, never sees half of it.

The bytes go to a temporary name in the target's own folder (a rename is atomic only within
one file system), are fsynced, and the temporary file is renamed over the target; then the
folder is fsynced so the rename itself survives a power cut. The result files, the HTML
report and `export --output` all write this way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".part"


def temp_name(folder: Path, prefix: str) -> Path:
    """A fresh temporary path in `folder`: `<prefix><random>.part`."""
    return folder / f"{prefix}{secrets.token_hex(4)}{TEMP_SUFFIX}"


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError from writing to an open file (ENOSPC from write or fsync) names no file:
    give it `path`, so the one sentence the user reads says which disk is full."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def fsync_file(path: Path) -> None:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(temp: Path, final: Path) -> None:
    """Rename the (already fsynced) `temp` over `final` and make the rename durable."""
    os.replace(temp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_text_file(target: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A UTF-8 text file that replaces `target` only once the block ends without an error.

    The file gets the permissions of any new file (0666 less the umask), not 0600.
    """
    temp = temp_name(target.parent, f".{target.name}.")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        commit(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
