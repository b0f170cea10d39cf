"""Faults of this machine, not of the API or the job: a full disk, a read-only or forbidden
folder, a file where a folder should be, a database that cannot be written. They halt the run
like an account-level error (stop claiming, let calls in flight end, keep the queue) and end
in one sentence that names the path and what to do."""

from __future__ import annotations

import errno

from runner.objects import ObjectStoreError
from runner.store import StoreUnavailable

# ObjectStoreError: a results bucket that refuses a write (or cannot be reached after the
# client's own retries) is this run's output failing, like a full disk; the bucket the
# inputs are presigned from failing stops us the same way. Halt and keep the queue.
LOCAL_FAULTS: tuple[type[Exception], ...] = (OSError, StoreUnavailable, ObjectStoreError)

_WHAT_TO_DO = {
    errno.ENOSPC: "free space on that disk (or choose another --out)",
    errno.EDQUOT: "free space within your quota (or choose another --out)",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "give this user write access there (or choose another --out)",
    errno.EPERM: "give this user write access there (or choose another --out)",
    errno.ENOTDIR: "a file stands where a folder should be: move it away",
    errno.EEXIST: "a file stands where a folder should be: move it away",
    errno.EISDIR: "a folder stands where a file should be: move it away",
    errno.EFBIG: "the file is larger than this system allows (see ulimit -f)",
}


def describe_local_fault(exc: BaseException) -> str:
    """One sentence for a local fault: what failed, where, and what to do."""
    if isinstance(exc, StoreUnavailable):
        return (
            f"{exc}. Free space on its disk, or wait for whatever holds it locked, then rerun: "
            "results already paid for are kept."
        )
    if isinstance(exc, ObjectStoreError):
        return (
            f"{exc}. Check the bucket, --s3-endpoint and the store's credentials "
            '(README, "Images in a bucket"), then rerun: results already paid for are kept.'
        )
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else "a file of the run"
        what = exc.strerror or str(exc) or type(exc).__name__
        todo = _WHAT_TO_DO.get(exc.errno or 0, "fix what the message says")
        return (
            f"cannot write {where}: {what}. To go on, {todo}, then rerun: "
            "results already paid for are kept."
        )
    return str(exc)
