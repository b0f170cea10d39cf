"""What a run is told (`RunSettings`), what it counts (`RunStats`) and how it ends
(`RunResult`, whose exit code reads the lifecycle's state sets)."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from runner.api.errors import ApiError
from runner.api.request import MAX_RESULT_BYTES
from runner.objects import BucketLocation, ObjectStoreConfig
from runner.scheduler.policy import RetryPolicy
from runner.store import FAILED_STATES, STALE_AFTER, WORK_STATES


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StopReason(StrEnum):
    FINISHED = "finished"
    HALTED = "halted"
    INTERRUPTED = "interrupted"
    LIMIT = "limit"  # --until, --max-jobs or --max-paid
    LOCAL_FAULT = "local fault"  # this machine's disk or database failed


@dataclass(frozen=True)
class RunSettings:
    out_dir: Path  # the results folder; with a bucket, the state folder again
    concurrency: int = 1
    download_workers: int = 16
    rsp_img_type: str = "url"
    batch: str | None = None
    until: datetime | None = None  # stop claiming at this moment
    max_jobs: int | None = None  # stop claiming once this many jobs are done or failed
    max_paid: int | None = None  # ... or once this many paid calls were made (in flight counted)
    retry: RetryPolicy = RetryPolicy()
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    activation_pause: float = 300.0  # ResourceUnavailable.Delivering: pause this long ...
    activation_limit: float = 1800.0  # ... and halt once it has lasted this long
    url_ttl: float = 3600.0  # result URLs are valid this long after the call started
    download_tries: int = 5  # failed fetches of one URL before it is generated again
    max_regenerations: int = 2  # ... at most this often per job (each a paid call)
    max_result_bytes: int = MAX_RESULT_BYTES  # a result (download or base64) may be this big
    outage_limit: float = 1800.0  # halt when the endpoint has not answered for this long
    poll_interval: float = 1.0
    worker: str = field(default_factory=default_worker_name)
    stale_after: timedelta = STALE_AFTER
    handle_signals: bool = True
    seed: int | None = None
    bucket: BucketLocation | None = None  # results go here instead of `out_dir`
    # The store of s3:// locations: result bucket and bucket inputs (None: AWS S3's defaults)
    object_store: ObjectStoreConfig | None = None
    state_dir: Path | None = None  # journal, temporary files, summaries [default: out_dir]
    presign_ttl: float = 1800.0  # an s3:// input's URL is valid this long after the claim

    @property
    def local_dir(self) -> Path:
        """This machine's folder for the paid-results journal, the run summaries and (with a
        bucket) the temporary files of results on their way up."""
        return self.state_dir or self.out_dir

    @property
    def temp_folders(self) -> tuple[Path, ...]:
        """Where a killed run may have left temporary files."""
        if self.bucket is not None or self.local_dir == self.out_dir:
            return (self.local_dir,)
        return (self.out_dir, self.local_dir)


@dataclass
class RunStats:
    """What this run did; read by the progress display and the summary."""

    started: float = field(default_factory=time.monotonic)
    calls: int = 0  # calls sent, whatever came of them
    answers: int = 0  # ... that the API itself answered (a result or one of its error codes)
    returned: int = 0  # ... whose job went back to the queue (throttled, retried, lost, ...)
    paid_calls: int = 0
    throttled: int = 0
    done: int = 0
    regenerations: int = 0
    failed_by_code: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    recovered: dict[str, int] = field(default_factory=dict)
    downloads: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_code.values())

    @property
    def wall_time(self) -> float:
        return time.monotonic() - self.started


EXIT_OK = 0
EXIT_FAILED_JOBS = 1
EXIT_HALTED = 3
EXIT_LIMIT = 4
EXIT_LOCAL_FAULT = 5
EXIT_UNEXPECTED = 6
EXIT_INTERRUPTED = 130


@dataclass
class RunResult:
    reason: StopReason
    stats: RunStats
    halt: ApiError | None = None
    fault: str | None = None  # the sentence that names a local fault
    counts: dict[str, int] = field(default_factory=dict)  # jobs per state at the end

    @property
    def exit_code(self) -> int:
        if self.reason is StopReason.HALTED:
            return EXIT_HALTED
        if self.reason is StopReason.LOCAL_FAULT:
            return EXIT_LOCAL_FAULT
        if self.reason is StopReason.INTERRUPTED:
            return EXIT_INTERRUPTED
        if any(self.counts.get(s, 0) for s in FAILED_STATES):
            return EXIT_FAILED_JOBS
        if self.reason is StopReason.LIMIT and any(self.counts.get(s, 0) for s in WORK_STATES):
            return EXIT_LIMIT
        return EXIT_OK
