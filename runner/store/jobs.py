"""The job record as the rest of the runner sees it: a frozen snapshot, never an ORM object."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.api.request import ChangeClothesRequest
from runner.manifest import build_request


class JobState(enum.StrEnum):
    """Where a job is in its life (see DESIGN.md, "Job life")."""

    QUEUED = "queued"  # waiting for an API slot (maybe not before `not_before`)
    SUBMITTING = "submitting"  # claimed by a worker; the API call is in flight
    GENERATED = "generated"  # the API returned a result URL; the download is pending
    DONE = "done"  # the image is on disk (or copied from an identical finished job)
    FAILED = "failed"  # given up on, with the last error code and message
    LINKED = "linked"  # waits for an identical job in flight elsewhere; follows its outcome


IN_FLIGHT_STATES = (JobState.QUEUED, JobState.SUBMITTING, JobState.GENERATED)
"""States of a job that will still produce a result: new identical rows link to it."""

WORK_STATES = (JobState.QUEUED, JobState.SUBMITTING, JobState.GENERATED, JobState.LINKED)
"""States that mean "not finished yet"."""

FINAL_STATES = (JobState.DONE, JobState.FAILED)


@dataclass(frozen=True)
class Job:
    """One row of the `jobs` table, as it was when read. Datetimes are aware UTC."""

    id: int
    batch_id: int
    batch_name: str
    external_id: str
    model_url: str
    clothes_url: str
    clothes_type: str
    options: dict[str, Any]
    dedupe_key: str
    state: JobState
    attempts: int
    linked_job_id: int | None = None
    not_before: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None
    request_id: str | None = None
    result_url: str | None = None
    result_expires_at: datetime | None = None
    output_path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    def to_request(self, rsp_img_type_default: str) -> ChangeClothesRequest:
        """The API request for this job; the row's own `rsp_img_type` beats the default."""
        return build_request(
            self.model_url,
            self.clothes_url,
            self.clothes_type,
            self.options,
            rsp_img_type_default=rsp_img_type_default,
        )
