"""The morning after: image checks cached by URL, and the rows a submit skipped as invalid.

`image_checks` holds what the preflight learned about each input URL (so a rerun does not
fetch again and the report can show the inputs); `invalid_rows` gives every skipped row its
reason in `status`, `export` and `report`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:00:02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_checks",
        sa.Column("url_sha256", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("problem", sa.Text, nullable=True),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("format", sa.String(10), nullable=True),
        sa.Column("bytes", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("thumbnail", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "invalid_rows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "batch_id", sa.Integer, sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("problems", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_invalid_rows_batch_line", "invalid_rows", ["batch_id", "line"])


def downgrade() -> None:
    op.drop_index("ix_invalid_rows_batch_line", table_name="invalid_rows")
    op.drop_table("invalid_rows")
    op.drop_table("image_checks")
