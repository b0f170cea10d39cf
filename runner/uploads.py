"""`submit --upload s3://BUCKET/PREFIX`: the local photos a manifest names, into the bucket.

Each distinct file is read once, judged as the image preflight judges a fetched image
(decodes, each side within the API's bounds, under 8 MB once Base64 encoded), and uploaded
under its content's name, `PREFIX/<sha256>.<ext>`, unless an object is already there: so
the same photo under two names is one object, and a rerun (or a changed manifest) uploads
only what is new. A file the API would refuse is not uploaded; its rows become invalid rows
with the reason. Nothing is made public: the object is private, and `run` hands the API a
presigned GET URL made when the job is claimed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import anyio

from runner.manifest import (
    ManifestError,
    ManifestReader,
    ManifestReport,
    Problem,
    validate_manifest,
)
from runner.manifest.local import LocalFiles, reading_local_files
from runner.objects import BucketLocation, ObjectRef, ObjectStoreConfig, ObjectStoreError
from runner.objects.client import ObjectStore, open_object_store
from runner.preflight import MAX_FILE_BYTES, inspect_image

CONCURRENCY = 8
_EXTENSIONS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png")}
_EXTENSIONS |= {"WEBP": ("webp", "image/webp"), "BMP": ("bmp", "image/bmp")}
# A camera's multi-picture JPEG (Pillow names it MPO) is a JPEG to everyone else.
_EXTENSIONS |= {"MPO": ("jpg", "image/jpeg")}
CHANGED = "changed while it was being submitted; submit again"


@dataclass(frozen=True)
class _Examined:
    path: Path
    sha256: str
    ext: str
    content_type: str


@dataclass
class UploadResult:
    """What the upload did, and what the manifest's local paths now stand for."""

    local: LocalFiles
    files: int = 0  # distinct local files the manifest names
    contents: int = 0  # ... distinct by content: one object each
    uploaded: int = 0  # objects written now
    present: int = 0  # objects the bucket already had
    bytes_uploaded: int = 0
    refused: int = 0  # files the API would refuse (their rows are invalid)
    invalid: ManifestReport | None = None  # set when nothing was uploaded for invalid rows

    def lines(self, destination: BucketLocation) -> list[str]:
        if not self.files:
            return []
        if self.invalid is not None:
            return []
        size = f" ({_megabytes(self.bytes_uploaded)})" if self.uploaded else ""
        parts = [f"{self.uploaded} uploaded{size}"]
        parts.append(f"{self.present} already there")
        if self.refused:
            parts.append(f"{self.refused} the API would refuse (their rows are listed below)")
        distinct = (
            f" ({self.contents} distinct)" if self.contents != self.files - self.refused else ""
        )
        return [f"Local images: {self.files} files{distinct} to {destination}: {', '.join(parts)}."]


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


async def upload_local_images(
    manifest: Path,
    *,
    fmt: str | None,
    base_url: str | None,
    root: Path,
    destination: BucketLocation,
    config: ObjectStoreConfig,
    skip_invalid: bool,
    concurrency: int = CONCURRENCY,
) -> UploadResult:
    """Upload the local files `manifest` names; the result's `local` maps each to its object
    for the submit that follows (read it inside `reading_local_files(result.local)`).

    Without `skip_invalid`, a manifest with any invalid row uploads nothing (the submit will
    refuse it anyway). Raises `ObjectStoreError` (one sentence) when the bucket cannot be used.
    """
    seen, invalid_rows = await anyio.to_thread.run_sync(
        _local_files_named, manifest, fmt, base_url, root
    )
    result = UploadResult(LocalFiles(root=root, unmapped=CHANGED))
    result.files = len(seen)
    if not seen:
        return result
    examined = await _examine_all(seen, concurrency, result.local.problems)
    result.refused = len(result.local.problems)
    if (invalid_rows or result.local.problems) and not skip_invalid:
        # The submit would queue nothing: list the problems now and upload nothing.
        result.invalid = await anyio.to_thread.run_sync(
            _problems, manifest, fmt, base_url, result.local
        )
        return result
    by_sha: dict[str, list[_Examined]] = {}
    for item in examined:
        by_sha.setdefault(item.sha256, []).append(item)
    result.contents = len(by_sha)
    async with open_object_store(config) as store:
        limit = anyio.Semaphore(concurrency)

        async def one(copies: list[_Examined]) -> None:
            async with limit:
                await _upload(store, destination, copies, result)

        async with anyio.create_task_group() as tg:
            for copies in by_sha.values():
                tg.start_soon(one, copies)
    return result


def _local_files_named(
    manifest: Path, fmt: str | None, base_url: str | None, root: Path
) -> tuple[dict[Path, set[str]], bool]:
    """The local files the manifest's rows name (with the fields that name each), and
    whether any row is invalid."""
    invalid = False
    with reading_local_files(LocalFiles(root=root)) as local:
        with ManifestReader(manifest, fmt=fmt, base_url=base_url) as reader:
            try:
                for item in reader:
                    invalid = invalid or isinstance(item, Problem)
            except ManifestError:
                invalid = True
        return local.seen, invalid


def _problems(
    manifest: Path, fmt: str | None, base_url: str | None, local: LocalFiles
) -> ManifestReport:
    """The manifest's problems, those of its local files among them (nothing uploaded)."""
    checking = LocalFiles(root=local.root, problems=local.problems)
    with reading_local_files(checking):
        return validate_manifest(manifest, fmt=fmt, base_url=base_url)


async def _examine_all(
    seen: dict[Path, set[str]], concurrency: int, problems: dict[Path, str]
) -> list[_Examined]:
    limit = anyio.CapacityLimiter(concurrency)
    found: list[_Examined] = []

    async def one(path: Path) -> None:
        logo_only = seen[path] == {"logo_url"}
        outcome = await anyio.to_thread.run_sync(_examine, path, logo_only, limiter=limit)
        if isinstance(outcome, str):
            problems[path] = outcome
        else:
            found.append(outcome)

    async with anyio.create_task_group() as tg:
        for path in sorted(seen):
            tg.start_soon(one, path)
    return found


def _examine(path: Path, logo_only: bool) -> _Examined | str:
    """The file's digest and kind, or why the API would refuse it (in a worker thread). The
    API's bounds on a side are for the model and garment photos; a logo is any size."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    check = inspect_image(path.as_uri(), data)
    side_only = check.width is not None  # an image whose sides alone are out of bounds
    if check.problem is not None and not (logo_only and side_only):
        return f"{path}: {check.problem}"
    ext, content_type = _EXTENSIONS[check.format or "JPEG"]
    return _Examined(path, hashlib.sha256(data).hexdigest(), ext, content_type)


async def _upload(
    store: ObjectStore, destination: BucketLocation, copies: list[_Examined], result: UploadResult
) -> None:
    """One content, once: nothing when the bucket has it, else read again and put."""
    first = copies[0]
    ref: ObjectRef = destination.ref(f"{first.sha256}.{first.ext}")
    if await store.head(ref) is None:
        data = await anyio.Path(first.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != first.sha256:
            raise ObjectStoreError(f"{first.path} {CHANGED}")
        await store.put_bytes(ref, data, content_type=first.content_type)
        result.uploaded += 1
        result.bytes_uploaded += len(data)
    else:
        result.present += 1
    for copy in copies:
        result.local.refs[copy.path] = str(ref)
