"""Image values that are not http(s) URLs: local files and objects in a bucket.

The API takes only URLs, so a local photo must be uploaded first (`submit --upload
s3://BUCKET/PREFIX`) and the job records the object (`s3://bucket/key`), which `run` presigns
when it claims the job. The rule for a value without a scheme:

- with `--base-url`, it is a path on that server, as it always was (a local file is then
  written as a `file://` URL);
- without it, it is a local file: absolute, or relative to the images folder (`--images-dir`,
  default the manifest's folder).

Which local files may be used, and what they become, is decided by the command that reads
the manifest (`LocalFiles`, set with `reading_local_files`); the manifest reader learns it
from a context variable, so the submit pipeline that streams the rows needs no new argument.
Without one, a local file is a row error that says how to fix it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runner.objects.location import ObjectRef, is_bucket_url

UPLOAD_HINT = (
    "a local file must be uploaded first: pass --upload s3://BUCKET/PREFIX "
    "(or --base-url URL when it is a path on a web server)"
)


class LocalFileError(ValueError):
    """A local image the row names cannot be used; the message says why."""


@dataclass
class LocalFiles:
    """What local image paths in a manifest become.

    `root`: the folder relative paths start from. `refs`: file → the object it was uploaded
    as (`s3://…`). `problems`: file → why it cannot be used (a row error). A file in neither
    is returned as its `file://` URL when `unmapped` is None (the first pass of an upload,
    and `validate`), else refused with `unmapped` as the reason."""

    root: Path
    refs: dict[Path, str] = field(default_factory=dict)
    problems: dict[Path, str] = field(default_factory=dict)
    unmapped: str | None = None
    seen: dict[Path, set[str]] = field(default_factory=dict)  # file → fields naming it

    def resolve(self, field_name: str, path: Path) -> str:
        if not path.is_absolute():
            path = self.root / path
        path = Path(os.path.normpath(path))
        ref = self.refs.get(path)
        if ref is not None:
            return ref
        problem = self.problems.get(path)
        if problem is not None:
            raise LocalFileError(problem)
        try:
            if not path.is_file():
                what = "is not a file" if path.exists() else "does not exist"
                raise LocalFileError(f"{path} {what}")
        except OSError as exc:  # a path too long, a folder we may not enter
            raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        if self.unmapped is not None:
            raise LocalFileError(f"{path} {self.unmapped}")
        self.seen.setdefault(path, set()).add(field_name)
        return path.as_uri()


_current: ContextVar[LocalFiles | None] = ContextVar("changeclothes_local_files", default=None)


@contextlib.contextmanager
def reading_local_files(local: LocalFiles) -> Iterator[LocalFiles]:
    """Manifests read inside this block may name local files, resolved by `local`."""
    token = _current.set(local)
    try:
        yield local
    finally:
        _current.reset(token)


def local_path(value: str, base_url: str | None) -> Path | None:
    """The local file `value` names, or None when it is not one (a URL, or a path on
    --base-url's server)."""
    if value[:7].lower() == "file://":
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            return None
        return Path(unquote(parts.path))
    if base_url is not None:
        return None
    scheme = urlsplit(value).scheme if "://" in value else ""
    if scheme:
        return None
    return Path(value)


def resolve_local(field_name: str, path: Path) -> str:
    """What the row records for the local file `path` (`LocalFileError` says why not)."""
    local = _current.get()
    if local is None:
        raise LocalFileError(UPLOAD_HINT)
    return local.resolve(field_name, path)


def check_bucket_ref(value: str) -> str:
    """An `s3://bucket/key` object reference, as written (`LocalFileError` says why not)."""
    try:
        return str(ObjectRef.parse(value))
    except ValueError as exc:
        raise LocalFileError(str(exc)) from None


__all__ = [
    "LocalFileError",
    "LocalFiles",
    "check_bucket_ref",
    "is_bucket_url",
    "local_path",
    "reading_local_files",
    "resolve_local",
]
