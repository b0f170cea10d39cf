"""What the commands need to know about a bucket before they start: is `--out` one, where
the local state goes, and is the optional client installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from runner.objects import BucketLocation, ObjectStoreMissing, is_bucket_url
from runner.store.database import database_url

PG_STATE_DIR = ".changeclothes-state"


def bucket_out(out: str) -> BucketLocation | None:
    """`--out` as a bucket location, None for a folder; a malformed s3:// is a usage error."""
    if not is_bucket_url(out):
        return None
    try:
        location = BucketLocation.parse(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    require_s3_client()
    return location


def require_s3_client() -> None:
    """Exit 2 with how to install it when the optional S3 client is missing."""
    if importlib.util.find_spec("aiobotocore") is None:
        raise click.UsageError(str(ObjectStoreMissing()))


def default_state_dir(db: str) -> Path:
    """Beside a SQLite queue (`queue.db` → `queue.state/`: one folder per queue, so a journal
    is never replayed into another queue); for a server database, in the current folder."""
    url = database_url(db)
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database).with_suffix(".state")
    return Path(PG_STATE_DIR)
