"""What can go wrong with a bucket, as one sentence each (never a secret, never a signed URL)."""

from __future__ import annotations

EXTRA_HINT = "pip install 'changeclothes-runner[s3]'"


class ObjectStoreError(Exception):
    """The store refused or could not be reached; the message says which and what to check."""


class ObjectStoreMissing(ObjectStoreError):
    """Bucket support is an optional extra that is not installed."""

    def __init__(self) -> None:
        super().__init__(f"s3:// locations need the optional S3 support: {EXTRA_HINT}")


class ObjectTooLarge(ObjectStoreError):
    """An object is bigger than the caller's bound (nothing more was read)."""
