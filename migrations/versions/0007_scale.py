"""Flat cost at any queue size: jobs per batch and state kept in `job_counts` by triggers (so
`status` and the progress line read a few rows, not every job), an index holding only the jobs
that wait for another (so settling a job never scans the finished ones), and autovacuum
settings on PostgreSQL that keep the planner's picture of `jobs` fresh on a busy queue.

The counts are kept by the database itself, so every writer keeps them right: the scheduler,
submit's bulk inserts, cancel and retry, later migrations. On SQLite each batch has one row per
state, made with the batch and updated in place (one writer at a time). On PostgreSQL several
runners write at once: one row per (batch, state) would serialise them on that row and could
deadlock two transactions that move jobs in opposite directions, so each statement appends
its net change instead (statement-level triggers over transition tables, one row per batch and
state it changed) and readers sum; `runner.store.counts` folds the rows together now and then.

A later migration that rebuilds `jobs` on SQLite (Alembic's batch mode copies the table) drops
these triggers with it, and must create them again (`create_sqlite_triggers`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("queued", "submitting", "generated", "linked", "done", "failed", "cancelled")
"""Every job state as of this revision (lifecycle.JobState); a migration that adds a state
adds its row for every batch on SQLite."""

SQLITE_TRIGGERS = {
    "tr_batches_job_counts": f"""
        CREATE TRIGGER tr_batches_job_counts AFTER INSERT ON batches BEGIN
          INSERT INTO job_counts (batch_id, state, n) VALUES
            {", ".join(f"(NEW.id, '{s}', 0)" for s in STATES)};
        END""",
    "tr_jobs_counts_insert": """
        CREATE TRIGGER tr_jobs_counts_insert AFTER INSERT ON jobs BEGIN
          UPDATE job_counts SET n = n + 1 WHERE batch_id = NEW.batch_id AND state = NEW.state;
        END""",
    "tr_jobs_counts_update": """
        CREATE TRIGGER tr_jobs_counts_update AFTER UPDATE OF state, batch_id ON jobs
        WHEN OLD.state IS NOT NEW.state OR OLD.batch_id IS NOT NEW.batch_id BEGIN
          UPDATE job_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;
          UPDATE job_counts SET n = n + 1 WHERE batch_id = NEW.batch_id AND state = NEW.state;
        END""",
    "tr_jobs_counts_delete": """
        CREATE TRIGGER tr_jobs_counts_delete AFTER DELETE ON jobs BEGIN
          UPDATE job_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;
        END""",
    "tr_batches_job_counts_delete": """
        CREATE TRIGGER tr_batches_job_counts_delete AFTER DELETE ON batches BEGIN
          DELETE FROM job_counts WHERE batch_id = OLD.id;
        END""",
}

# PostgreSQL: one function per kind of statement; each appends the statement's net change.
PG_FUNCTIONS = {
    "job_counts_after_insert": """
        INSERT INTO job_counts (batch_id, state, n)
        SELECT batch_id, state, count(*) FROM new_rows GROUP BY batch_id, state;""",
    "job_counts_after_update": """
        INSERT INTO job_counts (batch_id, state, n)
        SELECT batch_id, state, sum(n) FROM (
            SELECT batch_id, state, -1 AS n FROM old_rows
            UNION ALL SELECT batch_id, state, 1 FROM new_rows
        ) AS moved GROUP BY batch_id, state HAVING sum(n) <> 0;""",
    "job_counts_after_delete": """
        INSERT INTO job_counts (batch_id, state, n)
        SELECT batch_id, state, -count(*) FROM old_rows GROUP BY batch_id, state;""",
}
PG_TRIGGERS = {
    "tr_jobs_counts_insert": ("INSERT", "NEW TABLE AS new_rows", "job_counts_after_insert"),
    "tr_jobs_counts_update": (
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "job_counts_after_update",
    ),
    "tr_jobs_counts_delete": ("DELETE", "OLD TABLE AS old_rows", "job_counts_after_delete"),
}

# jobs: rows change state all the time; analyse and vacuum after 2 % / 5 % of them changed
# (the defaults, 10 % / 20 %, leave a million-job queue with a stale picture for hours).
# job_counts: small, rewritten constantly: vacuum it after every thousand dead rows.
PG_STORAGE = {
    "jobs": {"autovacuum_vacuum_scale_factor": "0.05", "autovacuum_analyze_scale_factor": "0.02"},
    "job_counts": {"autovacuum_vacuum_scale_factor": "0", "autovacuum_vacuum_threshold": "1000"},
}


def create_sqlite_triggers() -> None:
    for sql in SQLITE_TRIGGERS.values():
        op.execute(sql)


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_job_counts_batch_state", "job_counts", ["batch_id", "state"])
    # Settling a job updates the jobs waiting for it: only those are in this index. It replaces
    # the index of every job's linked_job_id, mostly NULL, which SQLite's planner (with
    # statistics) judged useless and scanned the table instead; no query needs that one.
    op.drop_index("ix_jobs_linked_job_id", table_name="jobs")
    op.create_index(
        "ix_jobs_linked_waiting",
        "jobs",
        ["linked_job_id"],
        postgresql_where=sa.text("state = 'linked'"),
        sqlite_where=sa.text("state = 'linked'"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "INSERT INTO job_counts (batch_id, state, n) SELECT b.id, s.state, 0 FROM batches b, ("
            + " UNION ALL ".join(f"SELECT '{s}' AS state" for s in STATES)
            + ") s"
        )
        op.execute(
            "UPDATE job_counts SET n = (SELECT count(*) FROM jobs WHERE jobs.batch_id = "
            "job_counts.batch_id AND jobs.state = job_counts.state)"
        )
        create_sqlite_triggers()
    else:
        op.execute(
            "INSERT INTO job_counts (batch_id, state, n) "
            "SELECT batch_id, state, count(*) FROM jobs GROUP BY batch_id, state"
        )
        for name, body in PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
                "RETURN NULL; END $$"
            )
        for name, (kind, tables, function) in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} AFTER {kind} ON jobs REFERENCING {tables} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        for table, settings in PG_STORAGE.items():
            pairs = ", ".join(f"{k} = {v}" for k, v in settings.items())
            op.execute(f"ALTER TABLE {table} SET ({pairs})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON jobs")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        op.execute("ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor, "
                   "autovacuum_analyze_scale_factor)")  # fmt: skip
    op.drop_index("ix_jobs_linked_waiting", table_name="jobs")
    op.create_index("ix_jobs_linked_job_id", "jobs", ["linked_job_id"])
    op.drop_index("ix_job_counts_batch_state", table_name="job_counts")
    op.drop_table("job_counts")
