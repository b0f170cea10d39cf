"""Jobs can be cancelled: the state check admits 'cancelled'.

SQLite changes a CHECK constraint only by rebuilding the table (Alembic's batch mode); the
runner migrates with foreign keys off, so the rebuild leaves the events that point at jobs
as they are.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("queued", "submitting", "generated", "done", "failed", "linked")
AFTER = (*BEFORE, "cancelled")


def _state_check(states: Sequence[str]) -> None:
    with op.batch_alter_table("jobs", recreate="auto") as batch:
        batch.drop_constraint("ck_jobs_state", type_="check")
        batch.create_check_constraint(
            "ck_jobs_state", "state IN ({})".format(", ".join(f"'{s}'" for s in states))
        )


def upgrade() -> None:
    _state_check(AFTER)


def downgrade() -> None:
    # Cancelled jobs go back to failed, the nearest state the older schema knows.
    op.execute(
        "UPDATE jobs SET state = 'failed', "
        "last_error_code = COALESCE(last_error_code, 'Cancelled') WHERE state = 'cancelled'"
    )
    _state_check(BEFORE)
