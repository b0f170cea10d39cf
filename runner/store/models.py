"""The queue's tables as SQLAlchemy 2 declarative models.

The migrations in `migrations/versions/` create exactly this schema (a test compares them).
Queries use the `Table` objects (`JobModel.__table__` etc.) through SQLAlchemy Core; ORM
instances never leave the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no time zones, so the value is stored as naive
    UTC text (always with microseconds, so text order is time order) and read back as aware UTC.
    Naive datetimes are refused: they are a bug waiting for a daylight-saving change.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONType(sa.types.TypeDecorator[Any]):
    """JSON; JSONB on PostgreSQL. The PostgreSQL dialect is imported only when a PostgreSQL
    database is used (`status` on a SQLite file should not pay for loading it)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType()}


class BatchModel(Base):
    """One named set of jobs, made by the first `submit` of a manifest under that name."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    source_path: Mapped[str] = mapped_column(sa.Text)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    submitted_at: Mapped[datetime]
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (sa.UniqueConstraint("name", name="uq_batches_name"),)


class SubmissionModel(Base):
    """Every `submit` of a manifest into a batch (revision 0002): what came in, what was added."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("batches.id", ondelete="CASCADE"))
    source_path: Mapped[str] = mapped_column(sa.Text)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    submitted_at: Mapped[datetime]
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    row_count: Mapped[int] = mapped_column(default=0)
    queued: Mapped[int] = mapped_column(default=0)
    linked: Mapped[int] = mapped_column(default=0)
    already_present: Mapped[int] = mapped_column(default=0)
    skipped_invalid: Mapped[int] = mapped_column(default=0)

    __table_args__ = (sa.Index("ix_submissions_batch_sha", "batch_id", "content_sha256"),)


class JobModel(Base):
    """One model/garment pair to turn into one result image."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("batches.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    model_url: Mapped[str] = mapped_column(sa.Text)
    clothes_url: Mapped[str] = mapped_column(sa.Text)
    clothes_type: Mapped[str] = mapped_column(sa.String(20))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(sa.String(64))
    linked_job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id"))
    state: Mapped[str] = mapped_column(sa.String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    regenerations: Mapped[int] = mapped_column(default=0, server_default="0")
    not_before: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))
    claimed_at: Mapped[datetime | None]
    last_error_code: Mapped[str | None] = mapped_column(sa.String(200))
    last_error_message: Mapped[str | None] = mapped_column(sa.Text)
    request_id: Mapped[str | None] = mapped_column(sa.String(100))
    result_url: Mapped[str | None] = mapped_column(sa.Text)
    result_expires_at: Mapped[datetime | None]
    output_path: Mapped[str | None] = mapped_column(sa.Text)
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("batch_id", "external_id", name="uq_jobs_batch_external_id"),
        # claim_next reads ix_jobs_claimable (revision 0006, in lifecycle.py), which replaced
        # ix_jobs_state_id (state, id): that one also indexed every finished job.
        # next_not_before: the earliest back-off among queued jobs.
        sa.Index("ix_jobs_state_not_before", "state", "not_before"),
        # status: counts per batch and state, answered from the index alone.
        sa.Index("ix_jobs_batch_state", "batch_id", "state"),
        # submit: an identical finished or in-flight job in any batch.
        sa.Index("ix_jobs_dedupe_state", "dedupe_key", "state"),
        # downloads, earliest expiry first; crash recovery of expired results.
        sa.Index("ix_jobs_state_expires", "state", "result_expires_at"),
        # The check of `state` (ck_jobs_state), the index of claimable jobs (ix_jobs_claimable)
        # and of jobs waiting for another (ix_jobs_linked_waiting, revision 0007, which
        # replaced ix_jobs_linked_job_id) are added by runner/store/lifecycle.py, which owns
        # the states.
    )


class JobCountModel(Base):
    """Jobs per batch and state (revision 0007), kept by database triggers on `jobs` in the
    same transaction as every change: `status` and the progress line sum a few rows instead
    of counting every job. The count of a (batch, state) is the sum of its rows: one row each
    on SQLite; on PostgreSQL one row per statement that changed it, folded together by
    `runner.store.counts` now and then (see the migration for why)."""

    __tablename__ = "job_counts"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    batch_id: Mapped[int]  # no foreign key: a batch's deletion appends its jobs' last deltas
    state: Mapped[str] = mapped_column(sa.String(20))
    n: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.Index("ix_job_counts_batch_state", "batch_id", "state"),)


class EventModel(Base):
    """Append-only log: one row per API call, per download and per bookkeeping transition."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("batches.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(sa.String(20))
    at: Mapped[datetime]
    request_id: Mapped[str | None] = mapped_column(sa.String(100))
    code: Mapped[str | None] = mapped_column(sa.String(200))
    error_class: Mapped[str | None] = mapped_column(sa.String(40))
    latency_ms: Mapped[int | None]
    bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    attempt: Mapped[int | None]
    worker: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.Index("ix_events_kind_at", "kind", "at"),
        sa.Index("ix_events_job_id", "job_id"),
        sa.Index("ix_events_at", "at"),
    )


class ImageCheckModel(Base):
    """What the image preflight learned about one input URL (revision 0005): cached, so a
    rerun does not fetch it again and the report can show it."""

    __tablename__ = "image_checks"

    url_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # URLs can be long
    url: Mapped[str] = mapped_column(sa.Text)
    checked_at: Mapped[datetime]
    http_status: Mapped[int | None]
    problem: Mapped[str | None] = mapped_column(sa.Text)  # None: the API would accept it
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(sa.String(10))
    bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    # (nullable spelt out: the `bytes` column above shadows the type in this class)
    thumbnail: Mapped[Any] = mapped_column(sa.LargeBinary, nullable=True)  # a small JPEG


class InvalidRowModel(Base):
    """A manifest row a submit skipped as invalid (revision 0005), with its reasons."""

    __tablename__ = "invalid_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("batches.id", ondelete="CASCADE"))
    line: Mapped[int]
    external_id: Mapped[str | None] = mapped_column(sa.String(200))
    problems: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime]

    __table_args__ = (sa.Index("ix_invalid_rows_batch_line", "batch_id", "line"),)


class RunnerModel(Base):
    """One `run` process (revision 0006), alive while its heartbeat is recent. Jobs it has
    claimed (`jobs.claimed_by` = its id) are its own until it is declared dead."""

    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    started: Mapped[datetime]
    heartbeat: Mapped[datetime]


class AccountModel(Base):
    """The API account's concurrency, shared by every runner (revision 0006). `effective` is
    the adaptive number (lowered when the account is busy with calls not ours), None: the
    full `concurrency`."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    concurrency: Mapped[int | None]
    effective: Mapped[int | None]
    successes: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[datetime]


class LeaseModel(Base):
    """One API slot of the account held by a runner for one call (revision 0006)."""

    __tablename__ = "leases"

    id: Mapped[int] = mapped_column(primary_key=True)
    runner_id: Mapped[str] = mapped_column(sa.ForeignKey("runners.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    taken_at: Mapped[datetime]

    __table_args__ = (sa.Index("ix_leases_runner_id", "runner_id"),)


batches: sa.Table = BatchModel.__table__  # type: ignore[assignment]
submissions: sa.Table = SubmissionModel.__table__  # type: ignore[assignment]
jobs: sa.Table = JobModel.__table__  # type: ignore[assignment]
job_counts: sa.Table = JobCountModel.__table__  # type: ignore[assignment]
events: sa.Table = EventModel.__table__  # type: ignore[assignment]
image_checks: sa.Table = ImageCheckModel.__table__  # type: ignore[assignment]
invalid_rows: sa.Table = InvalidRowModel.__table__  # type: ignore[assignment]
runners: sa.Table = RunnerModel.__table__  # type: ignore[assignment]
accounts: sa.Table = AccountModel.__table__  # type: ignore[assignment]
leases: sa.Table = LeaseModel.__table__  # type: ignore[assignment]
