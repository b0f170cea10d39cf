"""The queue's database: models, migrations on open, the job lifecycle and every queue query
(knows no HTTP)."""

from runner.store.actions import JobSelection, Moved, RetryResult, move_selected, retry_failed
from runner.store.errors import (
    JobStateError,
    MigrationError,
    StoreError,
    StoreUnavailable,
    UnknownBatchError,
)
from runner.store.jobs import Job
from runner.store.lifecycle import (
    FAILED_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    WORK_STATES,
    Event,
    EventKind,
    JobState,
)
from runner.store.queue import EventSummary, Store, open_store
from runner.store.runners import STALE_AFTER, DeclaredDead
from runner.store.submit import SubmitResult, submit_manifest

__all__ = [
    "FAILED_STATES",
    "FINAL_STATES",
    "IN_FLIGHT_STATES",
    "STALE_AFTER",
    "WORK_STATES",
    "DeclaredDead",
    "Event",
    "EventKind",
    "EventSummary",
    "Job",
    "JobSelection",
    "JobState",
    "JobStateError",
    "MigrationError",
    "Moved",
    "RetryResult",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SubmitResult",
    "UnknownBatchError",
    "move_selected",
    "open_store",
    "retry_failed",
    "submit_manifest",
]
