"""The queue's database: models, migrations on open, the job lifecycle and every queue query
(knows no HTTP).

The names below load their modules on first use (PEP 562), so that `status` on a SQLite
queue, which reads it through the standard library (`runner.store.snapshot`), loads no
SQLAlchemy.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from runner.store.actions import (
        JobSelection,
        Moved,
        RetryResult,
        move_selected,
        retry_failed,
    )
    from runner.store.errors import (
        JobStateError,
        MigrationError,
        StoreError,
        StoreUnavailable,
        UnknownBatchError,
    )
    from runner.store.jobs import Job
    from runner.store.lifecycle import Event, EventKind
    from runner.store.queue import EventSummary, Store, open_store
    from runner.store.runners import STALE_AFTER, DeclaredDead
    from runner.store.states import (
        FAILED_STATES,
        FINAL_STATES,
        IN_FLIGHT_STATES,
        WORK_STATES,
        JobState,
    )
    from runner.store.submit import SubmitResult, submit_manifest

_HOMES = {
    "runner.store.actions": ("JobSelection", "Moved", "RetryResult", "move_selected",
                             "retry_failed"),
    "runner.store.errors": ("JobStateError", "MigrationError", "StoreError", "StoreUnavailable",
                            "UnknownBatchError"),
    "runner.store.jobs": ("Job",),
    "runner.store.lifecycle": ("Event", "EventKind"),
    "runner.store.queue": ("EventSummary", "Store", "open_store"),
    "runner.store.runners": ("STALE_AFTER", "DeclaredDead"),
    "runner.store.states": ("FAILED_STATES", "FINAL_STATES", "IN_FLIGHT_STATES", "WORK_STATES",
                            "JobState"),
    "runner.store.submit": ("SubmitResult", "submit_manifest"),
}  # fmt: skip
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> typing.Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
