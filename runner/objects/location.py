"""`s3://BUCKET/PREFIX` locations and the object keys under them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEME = "s3://"
# S3's bucket naming rules (COS adds an -APPID suffix, which they allow).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def is_bucket_url(value: str) -> bool:
    return value.strip().lower().startswith(SCHEME)


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object: its bucket and full key."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, value: str) -> ObjectRef:
        """`s3://bucket/key` (a key is required); ValueError says what is wrong."""
        location = BucketLocation.parse(value)
        if not location.prefix:
            raise ValueError(f"{value!r} names a bucket but no object key")
        return cls(location.bucket, location.prefix)


@dataclass(frozen=True)
class BucketLocation:
    """A bucket and a key prefix (no leading or trailing slash; may be empty)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, value: str) -> BucketLocation:
        text = value.strip()
        if not is_bucket_url(text):
            raise ValueError(f"{value!r} is not an s3://BUCKET/PREFIX location")
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r}: an s3:// location takes no ?query or #fragment")
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"{value!r}: {bucket!r} is not a bucket name "
                "(3-63 characters: lower-case letters, digits, dots and hyphens)"
            )
        prefix = "/".join(p for p in parts.path.split("/") if p)
        if any(p in (".", "..") for p in prefix.split("/")):
            raise ValueError(f"{value!r}: a prefix may not contain '.' or '..' segments")
        return cls(bucket, prefix)

    def ref(self, *parts: str) -> ObjectRef:
        """The object at PREFIX/part/part…"""
        key = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return ObjectRef(self.bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"
