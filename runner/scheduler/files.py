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
import re
import shutil
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from anyio.lowlevel import RunVar
from PIL import Image, UnidentifiedImageError

from runner.atomic import TEMP_SUFFIX, commit, fsync_dir, fsync_file, naming, temp_name

TEMP_PREFIX = ".changeclothes-"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
_RESULT_EXTENSIONS = tuple(sorted(set(_EXTENSIONS.values())))
_CONTENT_TYPES = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
}


# The largest result image checked, in pixels (README, "What the runner guarantees"). The
# API's output has the model photo's resolution, whose sides are under 3000 px (9 MP); a
# decoded 16 MP image costs 64 MB, so at most FILE_THREADS are checked at once, however
# many downloads run.
MAX_RESULT_PIXELS = 4096 * 4096
_CHECKED_FORMATS = tuple(_EXTENSIONS)  # the decoders a result may reach; no others

# Pillow warns (and only errors at twice its own limit) about a decompression bomb. Our own
# pixel limit is lower and checked first, so the warning can only come from a bomb: make it
# an error. Installed once at import, not toggled around each check: warning filters are
# process-wide, and checks run in worker threads.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class NotAnImage(Exception):
    """The bytes received are not an image the runner can check safely: junk, truncated,
    too many pixels (a decompression bomb), or any other decoder failure."""

    code = "ClientError.ResultNotAnImage"


class IncompleteFile(Exception):
    """Fewer (or more) bytes arrived than the sender announced."""


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    sha256: str
    size: int


def _image_format(path: Path, body: bytes | None = None) -> str:
    """The image's format, or NotAnImage; `body` is the file's content when it is still in
    memory (read from `path` otherwise). Only errors opening the file itself (a local fault,
    not a bad result) pass through as OSError."""
    with BytesIO(body) if body is not None else path.open("rb") as fh:
        try:
            return _checked_format(fh)
        except NotAnImage:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad result
            raise NotAnImage(f"{type(exc).__name__}: {exc}"[:500]) from None


def _checked_format(fh: BinaryIO) -> str:
    with _open_image(fh) as image:
        fmt = image.format or ""
        image.verify()
    # verify() checks the structure; decoding catches truncated or broken pixel data.
    fh.seek(0)
    with _open_image(fh) as image:
        # A JPEG is decoded at 1/8 scale: every byte of its compressed data is still read
        # and decoded (a truncated or broken stream fails as in a full decode), at a third
        # of the CPU and 1/64 of the memory. Other formats ignore the draft.
        image.draft(None, (1, 1))
        image.load()
    return fmt


def _open_image(fh: BinaryIO) -> Image.Image:
    """Reads only the header: the pixel count is known before anything is decoded."""
    try:
        image = Image.open(fh, formats=_CHECKED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise NotAnImage("not an image of a known format") from None
    width, height = image.size
    if width * height > MAX_RESULT_PIXELS:
        image.close()
        raise NotAnImage(
            f"{width}x{height} pixels, more than the limit of {MAX_RESULT_PIXELS} "
            "(a decompression bomb?)"
        )
    return image


def _final_name(
    temp: Path, folder: Path, stem: str, content_type: str | None, body: bytes | None = None
) -> Path:
    fmt = _image_format(temp, body)
    ext = _EXTENSIONS.get(fmt) or _CONTENT_TYPES.get((content_type or "").split(";")[0]) or ".img"
    return folder / f"{stem}{ext}"


def _clear_other_extensions(final: Path, folder: Path, stem: str) -> None:
    # Another extension from an earlier run of the same job would leave two files. Named
    # directly: a glob would scan the whole folder for every file (and `stem.*` would also
    # match another job's `stem.v2.jpg`, or treat `[` in an id as a pattern).
    for other_ext in _RESULT_EXTENSIONS:
        if other_ext != final.suffix:
            (folder / f"{stem}{other_ext}").unlink(missing_ok=True)


def temp_path(folder: Path, stem: str) -> Path:
    # The writer's process id is in the name: a runner starting next to a live one on this
    # host removes only the temporary files of processes that are gone.
    return temp_name(folder, f"{TEMP_PREFIX}{stem}-p{os.getpid()}-")


_WRITER = re.compile(r"-p(\d+)-[0-9a-f]+" + re.escape(TEMP_SUFFIX) + "$")


def writer_gone(path: Path) -> bool:
    found = _WRITER.search(path.name)
    if found is None:
        return True  # named before writers were: an old run's
    pid = int(found.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


SPILL_BYTES = 1024 * 1024  # chunks gathered in memory before they go to the temporary file


FILE_THREADS = 4
_file_threads: RunVar[anyio.CapacityLimiter] = RunVar("changeclothes_file_threads")


def file_threads() -> anyio.CapacityLimiter:
    """The worker threads result files are written and checked in, however many downloads
    run: each check decodes an image (CPU and memory, see MAX_RESULT_PIXELS), and more
    threads than cores would only take turns with the event loop."""
    try:
        return _file_threads.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(FILE_THREADS)
        _file_threads.set(limiter)
        return limiter


def _never() -> bool:
    return False


@dataclass(frozen=True)
class BeforeCommit:
    """The last word on whether a checked result may take its final place.

    `confirm` raises to keep it from there (it may ask the database). `vouched` is called in
    the worker thread that checked the file, just before renaming it: True when `confirm`
    would surely pass without asking anyone (so it must be quick and thread-safe). The
    rename then follows in that same thread, with nothing in between that could wait.
    """

    confirm: Callable[[], Awaitable[None]]
    vouched: Callable[[], bool] = _never


@dataclass(frozen=True)
class _Unconfirmed:
    """Checked under its temporary name; `before_commit.confirm` decides the rename."""

    temp: Path
    final: Path


async def write_stream(
    folder: Path,
    stem: str,
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    expected_size: int | None = None,
    *,
    before_commit: BeforeCommit | None = None,
) -> WrittenFile:
    """Stream `chunks` to a temporary file in `folder`, fsync, check it decodes, rename it to
    `folder/stem.<ext>`; raises NotAnImage for junk and IncompleteFile for a short body.

    Chunks are gathered up to SPILL_BYTES before each write: a typical result then costs one
    hop to a worker thread (write, fsync, check, rename together), a large one a few more,
    and memory stays bounded whatever the size.
    """
    spool = _Spool(folder, stem)
    vouched = before_commit.vouched if before_commit is not None else None
    try:
        await spool.take(chunks, expected_size)
        stored = await anyio.to_thread.run_sync(
            _store,
            folder,
            stem,
            spool.temp,
            spool.pending,
            content_type,
            vouched,
            limiter=file_threads(),
        )
        if isinstance(stored, _Unconfirmed):
            assert before_commit is not None
            spool.temp = stored.temp  # removed if what follows fails
            # The last word on whether the file may be written, with nothing between it and
            # the rename that could wait.
            await before_commit.confirm()
            _clear_other_extensions(stored.final, folder, stem)
            os.replace(stored.temp, stored.final)
            spool.temp = None
            await anyio.to_thread.run_sync(fsync_dir, folder)
        final = stored.final if isinstance(stored, _Unconfirmed) else stored
    except BaseException:
        await spool.discard()
        raise
    return WrittenFile(final, spool.digest.hexdigest(), spool.size)


@dataclass(frozen=True)
class CheckedFile:
    """A whole, checked result under a temporary name, for a caller that sends it elsewhere
    (a bucket) and then removes it."""

    temp: Path
    name: str  # the name it would have in a results folder: stem + its format's extension
    sha256: str
    size: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(Path(self.name).suffix, "application/octet-stream")


CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                 ".gif": "image/gif", ".bmp": "image/bmp"}  # fmt: skip


async def spool_checked(
    folder: Path,
    stem: str,
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    expected_size: int | None = None,
) -> CheckedFile:
    """As `write_stream`, to a temporary file in `folder` that keeps its temporary name
    (removed by the next start if its process dies): the caller removes it when done."""
    spool = _Spool(folder, stem)
    try:
        await spool.take(chunks, expected_size)
        ready, final = await anyio.to_thread.run_sync(
            _prepare, folder, stem, spool.temp, spool.pending, content_type, limiter=file_threads()
        )
    except BaseException:
        await spool.discard()
        raise
    return CheckedFile(ready, final.name, spool.digest.hexdigest(), spool.size)


@dataclass
class _Spool:
    """A body on its way to a temporary file in `folder`: chunks are gathered up to
    SPILL_BYTES before each write (one hop to a worker thread for a typical result), and
    what is still `pending` goes with the caller's last step."""

    folder: Path
    stem: str
    temp: Path | None = None
    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    async def take(self, chunks: AsyncIterator[bytes], expected_size: int | None) -> None:
        """Every chunk hashed and counted; IncompleteFile when fewer bytes came than said."""
        pending_size = 0
        async for chunk in chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            self.pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= SPILL_BYTES:
                self.temp = await anyio.to_thread.run_sync(
                    _append, self.folder, self.stem, self.temp, self.pending, limiter=file_threads()
                )
                self.pending, pending_size = [], 0
        if expected_size is not None and self.size != expected_size:
            raise IncompleteFile(f"got {self.size} of {expected_size} bytes")

    async def discard(self) -> None:
        if self.temp is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(self.temp.unlink, True)


def _append(
    folder: Path, stem: str, temp: Path | None, parts: list[bytes], *, sync: bool = False
) -> Path:
    """`parts` added to the temporary file (created when `temp` is None); `sync`: fsynced
    too, through the same open file."""
    created = temp is None
    if temp is None:
        folder.mkdir(parents=True, exist_ok=True)
        temp = temp_path(folder, stem)
    try:
        with naming(temp), temp.open("ab") as fh:
            fh.writelines(parts)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        if created:  # no caller knows its name yet
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        raise
    return temp


def _last_part(
    folder: Path, stem: str, temp: Path | None, parts: list[bytes]
) -> tuple[Path, bytes | None]:
    """The rest of the body written and fsynced; with the whole body when none of it had
    spilled to the file before (the check then reads memory, not the file again)."""
    whole = b"".join(parts) if temp is None else None
    return _append(folder, stem, temp, [whole] if whole is not None else parts, sync=True), whole


def _prepare(
    folder: Path, stem: str, temp: Path | None, parts: list[bytes], content_type: str | None
) -> tuple[Path, Path]:
    """Written, fsynced and checked: the temporary file and the name it is to have."""
    temp, whole = _last_part(folder, stem, temp, parts)
    try:
        return temp, _final_name(temp, folder, stem, content_type, whole)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise


def _store(
    folder: Path,
    stem: str,
    temp: Path | None,
    parts: list[bytes],
    content_type: str | None,
    vouched: Callable[[], bool] | None = None,
) -> Path | _Unconfirmed:
    """Written, fsynced, checked and renamed into place; left under its temporary name
    (`_Unconfirmed`) when `vouched` is given and cannot vouch for the rename."""
    temp, final = _prepare(folder, stem, temp, parts, content_type)
    if vouched is not None and not vouched():
        return _Unconfirmed(temp, final)
    try:
        _clear_other_extensions(final, folder, stem)
        commit(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    return final


async def write_bytes(folder: Path, stem: str, data: bytes) -> WrittenFile:
    async def one_chunk() -> AsyncIterator[bytes]:
        yield data

    return await write_stream(folder, stem, one_chunk(), None)


def remove_stale_temp_files(folder: Path) -> int:
    """Temporary files a killed run left behind (never whole results: those are renamed):
    those of processes gone from this host. A live (or paused) writer's are kept."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if writer_gone(path):
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
