"""Record every submission of a manifest; index events for reports.

Before this revision a batch remembered only the manifest it was made from. Now each
`submit` into a batch is a row of `submissions` (what came in, what was added), so the same
content is recognised on any resubmit. Existing batches get one submission each, with the
counts of the jobs they hold.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("queued", sa.Integer, nullable=False),
        sa.Column("linked", sa.Integer, nullable=False),
        sa.Column("already_present", sa.Integer, nullable=False),
        sa.Column("skipped_invalid", sa.Integer, nullable=False),
    )
    op.create_index("ix_submissions_batch_sha", "submissions", ["batch_id", "content_sha256"])
    op.execute(
        """
        INSERT INTO submissions (batch_id, source_path, content_sha256, submitted_at, options,
                                 row_count, queued, linked, already_present, skipped_invalid)
        SELECT b.id, b.source_path, b.content_sha256, b.submitted_at, b.options,
               (SELECT count(*) FROM jobs j WHERE j.batch_id = b.id),
               (SELECT count(*) FROM jobs j WHERE j.batch_id = b.id AND j.linked_job_id IS NULL),
               (SELECT count(*) FROM jobs j WHERE j.batch_id = b.id
                                              AND j.linked_job_id IS NOT NULL),
               0, 0
        FROM batches b ORDER BY b.id
        """
    )
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_at", "events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_events_at", table_name="events")
    op.drop_index("ix_events_kind_at", table_name="events")
    op.drop_index("ix_submissions_batch_sha", table_name="submissions")
    op.drop_table("submissions")
