"""Initial schema: batches, jobs, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        _ts("submitted_at", nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.UniqueConstraint("name", name="uq_batches_name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("model_url", sa.Text, nullable=False),
        sa.Column("clothes_url", sa.Text, nullable=False),
        sa.Column("clothes_type", sa.String(20), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("linked_job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("not_before"),
        sa.Column("claimed_by", sa.String(200)),
        _ts("claimed_at"),
        sa.Column("last_error_code", sa.String(200)),
        sa.Column("last_error_message", sa.Text),
        sa.Column("request_id", sa.String(100)),
        sa.Column("result_url", sa.Text),
        _ts("result_expires_at"),
        sa.Column("output_path", sa.Text),
        sa.Column("sha256", sa.String(64)),
        sa.Column("bytes", sa.BigInteger),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("finished_at"),
        sa.UniqueConstraint("batch_id", "external_id", name="uq_jobs_batch_external_id"),
        sa.CheckConstraint(
            "state IN ('queued', 'submitting', 'generated', 'done', 'failed', 'linked')",
            name="ck_jobs_state",
        ),
    )
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])
    op.create_index("ix_jobs_state_not_before", "jobs", ["state", "not_before"])
    op.create_index("ix_jobs_batch_state", "jobs", ["batch_id", "state"])
    op.create_index("ix_jobs_dedupe_state", "jobs", ["dedupe_key", "state"])
    op.create_index("ix_jobs_state_expires", "jobs", ["state", "result_expires_at"])
    op.create_index("ix_jobs_linked_job_id", "jobs", ["linked_job_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="SET NULL")),
        sa.Column("kind", sa.String(20), nullable=False),
        _ts("at", nullable=False),
        sa.Column("request_id", sa.String(100)),
        sa.Column("code", sa.String(200)),
        sa.Column("error_class", sa.String(40)),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("attempt", sa.Integer),
        sa.Column("worker", sa.String(200)),
    )
    op.create_index("ix_events_job_id", "events", ["job_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("jobs")
    op.drop_table("batches")
