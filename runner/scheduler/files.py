"""Result files: written under a temporary name, fsynced, checked as an image, renamed.

A file under its final name is therefore always whole. Blocking file work runs in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from PIL import Image, UnidentifiedImageError

TEMP_PREFIX = ".changeclothes-"
TEMP_SUFFIX = ".part"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
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


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(temp: Path, folder: Path, stem: str, content_type: str | None) -> Path:
    fmt = _image_format(temp)
    ext = _EXTENSIONS.get(fmt) or _CONTENT_TYPES.get((content_type or "").split(";")[0]) or ".img"
    final = folder / f"{stem}{ext}"
    # Another extension from an earlier run of the same job would leave two files.
    for other in folder.glob(f"{stem}.*"):
        if other != final and other.suffix in set(_EXTENSIONS.values()):
            other.unlink(missing_ok=True)
    os.replace(temp, final)
    _fsync_dir(folder)
    return final


def temp_path(folder: Path, stem: str) -> Path:
    return folder / f"{TEMP_PREFIX}{stem}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


async def write_stream(
    folder: Path,
    stem: str,
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    expected_size: int | None = None,
) -> WrittenFile:
    """Stream `chunks` to `folder/stem.<ext>` safely; raises NotAnImage for junk."""
    await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
    temp = temp_path(folder, stem)
    digest = hashlib.sha256()
    size = 0
    try:
        async with await anyio.open_file(temp, "wb") as fh:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await fh.write(chunk)
            await fh.flush()
            await anyio.to_thread.run_sync(os.fsync, fh.wrapped.fileno())
        if expected_size is not None and size != expected_size:
            raise IncompleteFile(f"got {size} of {expected_size} bytes")
        final = await anyio.to_thread.run_sync(_finish, temp, folder, stem, content_type)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))
        raise
    return WrittenFile(final, digest.hexdigest(), size)


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
