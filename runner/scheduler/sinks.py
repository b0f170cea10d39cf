"""Where results go: a `ResultSink` takes a result's bytes, checks them as a result file is
checked (whole, decodes, within the caps) and keeps them, or raises as `write_stream` does.

Two kinds: a local folder (`LocalFolderSink`, `<out>/<batch>/<id>.<ext>`, this module) and a
bucket (`runner.scheduler.bucket_sink`, `s3://BUCKET/PREFIX/<batch>/<id>.<ext>`). The run
writes only through this interface; `open_sink` picks one from the run's settings.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

from runner.objects import is_bucket_url
from runner.scheduler.files import BeforeCommit, copy_result, write_stream
from runner.scheduler.settings import RunSettings

if TYPE_CHECKING:
    from runner.objects.client import SharedObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredResult:
    """A kept result: where (a file path, or `s3://bucket/key`), its sha256 and size."""

    location: str
    sha256: str
    size: int


class ResultSink(Protocol):
    async def store(
        self,
        batch: str,
        stem: str,
        chunks: AsyncIterator[bytes],
        content_type: str | None = None,
        expected_size: int | None = None,
        *,
        request_id: str | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> StoredResult:
        """Keep `chunks` as `<batch>/<stem>.<ext>` once checked; `before_commit` may raise to
        keep them from their final place. `request_id` names the paid call they came from."""
        ...

    async def find(self, batch: str, stem: str, request_id: str | None) -> StoredResult | None:
        """The result of paid call `request_id`, if a run killed before recording it had
        already kept it (nothing then to download)."""
        ...

    async def give_copy(self, source: str, batch: str, stem: str) -> str | None:
        """A linked job's own copy of an identical job's result at `source`: where it now
        is, or None when it keeps `source` (same folder, or no copy could be made)."""
        ...


async def store_bytes(
    sink: ResultSink, batch: str, stem: str, data: bytes, *, request_id: str | None = None
) -> StoredResult:
    """A result that arrived whole (a base64 answer)."""

    async def one_chunk() -> AsyncIterator[bytes]:
        yield data

    return await sink.store(batch, stem, one_chunk(), request_id=request_id)


class LocalFolderSink:
    """Results as files under `<out>/<batch>/`: temporary name, fsync, check, rename."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def folder(self, batch: str) -> Path:
        return self.out_dir / batch

    async def store(
        self,
        batch: str,
        stem: str,
        chunks: AsyncIterator[bytes],
        content_type: str | None = None,
        expected_size: int | None = None,
        *,
        request_id: str | None = None,
        before_commit: BeforeCommit | None = None,
    ) -> StoredResult:
        written = await write_stream(
            self.folder(batch),
            stem,
            chunks,
            content_type,
            expected_size,
            before_commit=before_commit,
        )
        return StoredResult(str(written.path), written.sha256, written.size)

    async def find(self, batch: str, stem: str, request_id: str | None) -> StoredResult | None:
        return None  # a file is renamed and recorded by the same runner: nothing to find

    async def give_copy(self, source: str, batch: str, stem: str) -> str | None:
        if is_bucket_url(source):
            log.info("Job %s keeps its result in the bucket (%s): --out is a folder.", stem, source)
            return None
        path, folder = Path(source), self.folder(batch)
        if path.parent.resolve() == folder.resolve():
            return None
        try:
            copied = await anyio.to_thread.run_sync(copy_result, path, folder, stem)
        except OSError as exc:
            log.warning("Could not copy %s for job %s: %s", path, stem, exc)
            return None
        return str(copied)


@contextlib.asynccontextmanager
async def open_sink(settings: RunSettings, objects: SharedObjectStore) -> AsyncIterator[ResultSink]:
    """The run's sink: its bucket when it has one (on the run's client `objects`, shared with
    its bucket inputs; the bucket checked first), else its folder."""
    if settings.bucket is None:
        yield LocalFolderSink(settings.out_dir)
        return
    from runner.scheduler.bucket_sink import open_bucket_sink

    async with open_bucket_sink(settings, objects) as sink:
        yield sink
