"""What can go wrong in the store, beyond the driver's own errors."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot be used right now: its disk is full, it is read-only, or it stayed
    locked past the busy timeout. Nothing is half-written; a rerun after the fix resumes."""


class StoreConflict(StoreUnavailable):
    """PostgreSQL gave up a transaction for another's sake (a deadlock, or a serialization
    failure) and rolled it back: nothing of it is written, and running it again may succeed."""


class MigrationError(StoreError):
    """The database's schema cannot be brought to this version's head."""


class JobStateError(StoreError):
    """A transition was asked of a job that is not in a state it can leave that way."""

    def __init__(self, job_id: int, action: str, state: str | None) -> None:
        self.job_id = job_id
        self.action = action
        self.state = state
        where = f"it is {state}" if state else "it does not exist"
        super().__init__(f"cannot {action} job {job_id}: {where}")


class UnknownBatchError(StoreError):
    """No batch has the given name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        hint = (
            f" (known: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''})"
            if known
            else ""
        )
        super().__init__(f"no batch named {name!r}{hint}")
