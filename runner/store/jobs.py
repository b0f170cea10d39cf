"""The job record as the rest of the runner sees it: a frozen snapshot, never an ORM object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.api.request import ChangeClothesRequest
from runner.manifest import build_request
from runner.store.lifecycle import JobState


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
    regenerations: int = 0  # times its result was lost and generated again (each paid)
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
