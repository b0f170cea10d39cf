"""A result file under its final name is always whole and always an image."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from runner.scheduler import files
from tests.seeding import run_seed

pytestmark = pytest.mark.anyio


def _png(side: int) -> bytes:
    noise = random.Random(run_seed()).randbytes(side * side * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(buffer, "PNG")
    return buffer.getvalue()


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_large_result_is_streamed_whole(tmp_path: Path) -> None:
    data = _png(900)  # about 2.4 MB of noise: more than one spill to disk
    assert len(data) > 2 * files.SPILL_BYTES
    written = await files.write_stream(tmp_path, "big", _chunks(data), "image/png", len(data))
    assert written.path == tmp_path / "big.png"
    assert written.path.read_bytes() == data
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]


async def test_junk_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    junk = b"<html>not an image</html>" * 100_000
    with pytest.raises(files.NotAnImage):
        await files.write_stream(tmp_path, "junk", _chunks(junk), "image/jpeg")
    assert list(tmp_path.iterdir()) == []


async def test_short_body_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    data = _png(900)
    with pytest.raises(files.IncompleteFile):
        await files.write_stream(tmp_path, "short", _chunks(data[:-10]), None, len(data))
    assert list(tmp_path.iterdir()) == []


def _jpeg(width: int, height: int) -> bytes:
    noise = random.Random(run_seed()).randbytes(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), noise).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("side", [300, 1400], ids=["in-memory", "spilled-to-disk"])
async def test_a_jpeg_cut_short_is_refused_and_leaves_nothing(tmp_path: Path, side: int) -> None:
    """The check decodes a JPEG at reduced scale: a stream that stops early still fails,
    whether the check reads it from memory or (past SPILL_BYTES) from the file."""
    data = _jpeg(side, side)
    assert (len(data) > files.SPILL_BYTES) == (side > 1000)
    whole = await files.write_stream(tmp_path / "ok", "whole", _chunks(data), "image/jpeg")
    assert whole.path.read_bytes() == data
    for cut in (len(data) // 2, len(data) - 64):
        with pytest.raises(files.NotAnImage, match="truncated"):
            await files.write_stream(tmp_path / "cut", "cut", _chunks(data[:cut]), "image/jpeg")
    assert list((tmp_path / "cut").iterdir()) == []


async def test_the_rename_asks_only_when_it_cannot_be_vouched_for(tmp_path: Path) -> None:
    """A result takes its final place without asking while `vouched` says so (a fresh
    heartbeat); otherwise `confirm` is asked, and one that refuses leaves no file."""
    asked: list[str] = []

    async def refuse() -> None:
        asked.append("asked")
        raise LookupError("taken over")

    data = _jpeg(64, 64)
    vouched = files.BeforeCommit(confirm=refuse, vouched=lambda: True)
    written = await files.write_stream(tmp_path, "a", _chunks(data), None, before_commit=vouched)
    assert written.path == tmp_path / "a.jpg" and asked == []

    unvouched = files.BeforeCommit(confirm=refuse)
    with pytest.raises(LookupError):
        await files.write_stream(tmp_path, "b", _chunks(data), None, before_commit=unvouched)
    assert asked == ["asked"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


@pytest.mark.parametrize("side", [300, 1400], ids=["in-memory", "spilled-to-disk"])
async def test_a_failing_fsync_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    """A disk that fails the fsync (EIO, ENOSPC) fails the result, naming the file, and
    leaves nothing behind, whether or not the body had spilled to disk before."""

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    data = _jpeg(side, side)
    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError) as raised:
        await files.write_stream(tmp_path, "r", _chunks(data), "image/jpeg")
    assert raised.value.filename and files.TEMP_PREFIX in raised.value.filename
    assert list(tmp_path.iterdir()) == []


async def test_rewrite_with_another_format_replaces_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "look.png").write_bytes(_png(600))
    buffer = io.BytesIO()
    Image.new("RGB", (600, 800), "red").save(buffer, "JPEG")
    await files.write_bytes(tmp_path, "look", buffer.getvalue())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["look.jpg"]


def test_stale_temporary_files_are_removed_and_a_live_writers_kept(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = files.temp_path(tmp_path / "b", "x")
    stale = stale.with_name(stale.name.replace(f"-p{os.getpid()}-", f"-p{gone.stdout.strip()}-"))
    stale.write_bytes(b"half")
    live = files.temp_path(tmp_path / "b", "y")  # this process is still writing it
    live.write_bytes(b"half")
    (tmp_path / "b" / "x.jpg").write_bytes(b"whole")
    assert files.remove_stale_temp_files(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(["x.jpg", live.name])
