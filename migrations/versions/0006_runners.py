"""Several runners on one queue: the runners and their heartbeats, the account's concurrency,
the API slots leased to runners, and an index holding only claimable jobs (which replaces
the index of every job by state and id).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("concurrency", sa.Integer, nullable=True),
        sa.Column("effective", sa.Integer, nullable=True),
        sa.Column("successes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "runner_id",
            sa.String(200),
            sa.ForeignKey("runners.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_leases_runner_id", "leases", ["runner_id"])
    op.create_index(
        "ix_jobs_claimable",
        "jobs",
        ["id"],
        postgresql_where=sa.text("state = 'queued'"),
        sqlite_where=sa.text("state = 'queued'"),
    )
    # Claims read the partial index; other lookups by state have (state, not_before).
    op.drop_index("ix_jobs_state_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])
    op.drop_index("ix_jobs_claimable", table_name="jobs")
    op.drop_index("ix_leases_runner_id", table_name="leases")
    op.drop_table("leases")
    op.drop_table("accounts")
    op.drop_table("runners")
