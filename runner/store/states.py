"""A job's states and their groups: plain Python, so that what only reads them (`status`)
loads no database library. The transitions between them are in `lifecycle`."""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """Where a job is in its life, in the order `status` and the report show them."""

    QUEUED = "queued"  # waiting for an API slot (maybe not before `not_before`)
    SUBMITTING = "submitting"  # claimed by a worker; the API call is in flight
    GENERATED = "generated"  # the API returned a result URL; the download is pending
    LINKED = "linked"  # waits for an identical job in flight elsewhere; follows its outcome
    DONE = "done"  # the image is on disk (or copied from an identical finished job)
    FAILED = "failed"  # given up on, with the last error code and message
    CANCELLED = "cancelled"  # a user gave up on it: it never runs, and `run` ignores it


IN_FLIGHT_STATES = frozenset({JobState.QUEUED, JobState.SUBMITTING, JobState.GENERATED})
"""A job in these states will still produce a result: new identical rows link to it."""

WORK_STATES = IN_FLIGHT_STATES | {JobState.LINKED}
"""Not finished yet: a run goes on while a job of its scope is in one of these."""

FAILED_STATES = frozenset({JobState.FAILED})
"""A job here makes `run` exit 1."""

FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED})
