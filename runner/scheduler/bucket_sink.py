"""Results in a bucket: `s3://BUCKET/PREFIX/<batch>/<id>.<ext>`.

A result is spooled into a temporary file on local disk (the state folder), checked there as
any result file is, and only then uploaded, with its sha256 and the paid call's request id
as object metadata; the temporary file goes. A PUT is whole or absent, so an object under its
final key is always a checked result; and since the key is the job's, runners on several
hosts (and a rerun after a kill) overwrite, never duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from runner.objects import BucketLocation, ObjectRef, ObjectStoreError
from runner.objects.client import ObjectStore, SharedObjectStore
from runner.scheduler.files import _RESULT_EXTENSIONS, CONTENT_TYPES, spool_checked
from runner.scheduler.settings import RunSettings
from runner.scheduler.sinks import BeforeCommit, ResultSink, StoredResult

log = logging.getLogger(__name__)

SHA256_KEY = "sha256"
REQUEST_ID_KEY = "request-id"
# A resumed job's object is looked for under these names, the API's usual JPEG first.
_LOOK_FOR = (".jpg", *(e for e in _RESULT_EXTENSIONS if e != ".jpg"), ".img")


class BucketSink:
    def __init__(self, objects: ObjectStore, location: BucketLocation, staging: Path) -> None:
        self.objects = objects
        self.location = location
        self.staging = staging  # temporary files: on local disk, never in the bucket

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
        checked = await spool_checked(self.staging, stem, chunks, content_type, expected_size)
        ref = self.location.ref(batch, checked.name)
        metadata = {SHA256_KEY: checked.sha256}
        if request_id:
            metadata[REQUEST_ID_KEY] = request_id
        try:
            if before_commit is not None:
                await before_commit.confirm()
            await self.objects.put_file(
                ref, checked.temp, content_type=checked.content_type, metadata=metadata
            )
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(checked.temp.unlink, True)
        return StoredResult(str(ref), checked.sha256, checked.size)

    async def find(self, batch: str, stem: str, request_id: str | None) -> StoredResult | None:
        if not request_id:
            return None
        for ext in _LOOK_FOR:
            ref = self.location.ref(batch, f"{stem}{ext}")
            try:
                info = await self.objects.head(ref)
            except ObjectStoreError as exc:
                log.debug("Could not look for %s (%s): downloading it again.", ref, exc)
                return None
            if info is None:
                continue
            sha = info.metadata.get(SHA256_KEY)
            if sha and info.metadata.get(REQUEST_ID_KEY) == request_id:
                return StoredResult(str(ref), sha, info.size)
        return None

    async def give_copy(self, source: str, batch: str, stem: str) -> str | None:
        folder = self.location.ref(batch).key
        try:
            if source.lower().startswith("s3://"):
                src = ObjectRef.parse(source)
                if src.bucket == self.location.bucket and src.key.rpartition("/")[0] == folder:
                    return None
                target = self.location.ref(batch, stem + _suffix(src.key))
                await self.objects.copy(src, target)
                return str(target)
            path = Path(source)
            target = self.location.ref(batch, stem + path.suffix)
            sha = await anyio.to_thread.run_sync(_file_sha256, path)
            await self.objects.put_file(
                target,
                path,
                content_type=CONTENT_TYPES.get(path.suffix),
                metadata={SHA256_KEY: sha},
            )
            return str(target)
        except (ObjectStoreError, OSError, ValueError) as exc:
            log.warning("Could not copy %s for job %s: %s", source, stem, exc)
            return None


def _suffix(key: str) -> str:
    name = key.rpartition("/")[2]
    return name[name.rfind(".") :] if "." in name else ""


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.asynccontextmanager
async def open_bucket_sink(
    settings: RunSettings, objects: SharedObjectStore
) -> AsyncIterator[ResultSink]:
    """The sink on the run's client (`objects`, shared with its bucket inputs), the bucket
    checked (it exists and is visible to these credentials) before any call is paid for."""
    assert settings.bucket is not None
    client = await objects.get()
    await client.check_bucket(settings.bucket.bucket)
    yield BucketSink(client, settings.bucket, settings.local_dir)
