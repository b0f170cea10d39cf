"""The queue's database: models, migrations on open, and every queue query (knows no HTTP)."""

from runner.store.errors import JobStateError, MigrationError, StoreError, UnknownBatchError
from runner.store.jobs import FINAL_STATES, IN_FLIGHT_STATES, WORK_STATES, Job, JobState
from runner.store.queue import DEFAULT_STALE_AFTER, Event, EventSummary, Store, open_store
from runner.store.status import BatchStatus, batch_status
from runner.store.submit import SubmitResult, submit_manifest

__all__ = [
    "DEFAULT_STALE_AFTER",
    "BatchStatus",
    "FINAL_STATES",
    "IN_FLIGHT_STATES",
    "WORK_STATES",
    "Event",
    "EventSummary",
    "Job",
    "JobState",
    "JobStateError",
    "MigrationError",
    "Store",
    "StoreError",
    "SubmitResult",
    "UnknownBatchError",
    "batch_status",
    "open_store",
    "submit_manifest",
]
