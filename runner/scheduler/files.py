"""Result files: written under a temporary name, fsynced, checked as an image, renamed
(the renaming and fsyncing are `runner.atomic`'s).

A file under its final name is therefore always whole. Blocking file work runs in a thread,
in one call per file: each hop to a worker thread costs the event loop, and a run at full
speed writes hundreds of files a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from PIL import Image, UnidentifiedImageError

from runner.atomic import TEMP_SUFFIX, commit, fsync_file, temp_name

TEMP_PREFIX = ".changeclothes-"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
_RESULT_EXTENSIONS = tuple(sorted(set(_EXTENSIONS.values())))
_CONTENT_TYPES = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
}


class NotAnImage(Exception):
    """The bytes received do not decode as an image."""


class IncompleteFile(Exception):
    """Fewer (or more) bytes arrived than the sender announced."""


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    sha256: str
    size: int


def _image_format(path: Path) -> str:
    try:
        with Image.open(path) as image:
            fmt = image.format or ""
            image.verify()
        # verify() checks the structure; a full decode catches truncated pixel data.
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImage(str(exc)) from None
    return fmt


def _finish(temp: Path, folder: Path, stem: str, content_type: str | None) -> Path:
    fmt = _image_format(temp)
    ext = _EXTENSIONS.get(fmt) or _CONTENT_TYPES.get((content_type or "").split(";")[0]) or ".img"
    final = folder / f"{stem}{ext}"
    # Another extension from an earlier run of the same job would leave two files. Named
    # directly: a glob would scan the whole folder for every file (and `stem.*` would also
    # match another job's `stem.v2.jpg`, or treat `[` in an id as a pattern).
    for other_ext in _RESULT_EXTENSIONS:
        if other_ext != ext:
            (folder / f"{stem}{other_ext}").unlink(missing_ok=True)
    commit(temp, final)
    return final


def temp_path(folder: Path, stem: str) -> Path:
    return temp_name(folder, f"{TEMP_PREFIX}{stem}-")


SPILL_BYTES = 1024 * 1024  # chunks gathered in memory before they go to the temporary file


async def write_stream(
    folder: Path,
    stem: str,
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    expected_size: int | None = None,
) -> WrittenFile:
    """Stream `chunks` to a temporary file in `folder`, fsync, check it decodes, rename it to
    `folder/stem.<ext>`; raises NotAnImage for junk and IncompleteFile for a short body.

    Chunks are gathered up to SPILL_BYTES before each write: a typical result then costs one
    hop to a worker thread (write, fsync, check, rename together), a large one a few more,
    and memory stays bounded whatever the size.
    """
    digest = hashlib.sha256()
    pending: list[bytes] = []
    pending_size = size = 0
    temp: Path | None = None
    try:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= SPILL_BYTES:
                temp = await anyio.to_thread.run_sync(_append, folder, stem, temp, pending)
                pending, pending_size = [], 0
        if expected_size is not None and size != expected_size:
            raise IncompleteFile(f"got {size} of {expected_size} bytes")
        final = await anyio.to_thread.run_sync(_store, folder, stem, temp, pending, content_type)
    except BaseException:
        if temp is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(temp.unlink, True)
        raise
    return WrittenFile(final, digest.hexdigest(), size)


def _append(folder: Path, stem: str, temp: Path | None, parts: list[bytes]) -> Path:
    if temp is None:
        folder.mkdir(parents=True, exist_ok=True)
        temp = temp_path(folder, stem)
    with temp.open("ab") as fh:
        fh.writelines(parts)
    return temp


def _store(
    folder: Path, stem: str, temp: Path | None, parts: list[bytes], content_type: str | None
) -> Path:
    temp = _append(folder, stem, temp, parts)
    try:
        fsync_file(temp)
        return _finish(temp, folder, stem, content_type)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise


async def write_bytes(folder: Path, stem: str, data: bytes) -> WrittenFile:
    async def one_chunk() -> AsyncIterator[bytes]:
        yield data

    return await write_stream(folder, stem, one_chunk(), None)


def remove_stale_temp_files(folder: Path) -> int:
    """Temporary files a killed run left behind (never whole results: those are renamed)."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def copy_result(source: Path, folder: Path, stem: str) -> Path:
    """Give a job a result file of its own from an identical job's file (a hard link where
    the file system allows, else a copy), with the same temporary-name-then-rename care."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{stem}{source.suffix}"
    temp = temp_path(folder, stem)
    try:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
            fsync_file(temp)
        commit(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    return final
