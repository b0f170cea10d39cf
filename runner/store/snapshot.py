"""What `status` shows, read from a SQLite queue with the standard library's sqlite3.

`status` is run often, by people and by scripts; loading SQLAlchemy and an async driver would
cost it more than all its reading. A SQLite file whose schema is at `HEAD_REVISION` is read
here in one read transaction: the counts table (kept by triggers), the invalid rows and the
runners. Any other database, or a file at another revision, gets None and goes through the
store as every other command does (which migrates it). tests/test_store_scale.py checks
that both ways give the same answer.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.clock import utcnow
from runner.store.errors import UnknownBatchError
from runner.store.head import HEAD_REVISION
from runner.store.states import JobState
from runner.store.views import InvalidRow, RunnerInfo, pid_alive, this_host

BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StatusSnapshot:
    counts: dict[str, dict[str, int]]  # {batch: {state: jobs}}, every state present
    invalid: list[InvalidRow]  # the first `invalid_limit`, by batch and line
    invalid_counts: dict[str, int]  # invalid rows per batch
    runners: list[RunnerInfo]


def read_status(
    path: Path, batch: str | None, *, invalid_limit: int, stale_after: timedelta
) -> StatusSnapshot | None:
    """The status of the SQLite queue at `path`, or None when it is not at HEAD_REVISION.
    UnknownBatchError for an unknown `batch`."""
    try:
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error:
        return None
    with contextlib.closing(conn):
        conn.isolation_level = None
        try:
            conn.execute("BEGIN")  # one snapshot for every query below
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:  # no schema yet, or not a queue
            return None
        if version is None or version[0] != HEAD_REVISION:
            return None
        try:
            counts, batch_id = _counts(conn, batch)
            invalid, invalid_counts = _invalid(conn, batch_id, invalid_limit)
            return StatusSnapshot(counts, invalid, invalid_counts, _runners(conn, stale_after))
        except sqlite3.Error:  # locked too long, damaged: the store's own path says so
            return None


def _counts(
    conn: sqlite3.Connection, batch: str | None
) -> tuple[dict[str, dict[str, int]], int | None]:
    names = dict(conn.execute("SELECT id, name FROM batches ORDER BY id").fetchall())
    batch_id = None
    if batch is not None:
        batch_id = next((i for i, name in names.items() if name == batch), None)
        if batch_id is None:
            raise UnknownBatchError(batch, list(names.values()))
        names = {batch_id: batch}
    result = {name: {str(s): 0 for s in JobState} for name in names.values()}
    rows = conn.execute(
        "SELECT batch_id, state, sum(n) FROM job_counts GROUP BY batch_id, state"
    ).fetchall()
    for bid, state, n in rows:
        if bid in names:
            result[names[bid]][state] = int(n)
    return result, batch_id


def _invalid(
    conn: sqlite3.Connection, batch_id: int | None, limit: int
) -> tuple[list[InvalidRow], dict[str, int]]:
    where, params = ("WHERE i.batch_id = ?", (batch_id,)) if batch_id is not None else ("", ())
    joined = f"FROM invalid_rows i JOIN batches b ON b.id = i.batch_id {where}"
    counts = {
        name: int(n)
        for name, n in conn.execute(f"SELECT b.name, count(*) {joined} GROUP BY b.name", params)
    }
    rows = conn.execute(
        f"SELECT b.name, i.line, i.external_id, i.problems {joined} "
        "ORDER BY i.batch_id, i.line LIMIT ?",
        (*params, limit),
    )
    return [InvalidRow(*r) for r in rows], counts


def _runners(conn: sqlite3.Connection, stale_after: timedelta) -> list[RunnerInfo]:
    rows = conn.execute(
        "SELECT r.id, r.host, r.pid, r.started, r.heartbeat, "
        "(SELECT count(*) FROM jobs j WHERE j.claimed_by = r.id "
        " AND unlikely(j.state IN ('submitting', 'generated'))), "  # see lifecycle.state_is
        "(SELECT count(*) FROM leases l WHERE l.runner_id = r.id) "
        "FROM runners r ORDER BY r.started, r.id"
    ).fetchall()
    now, here = utcnow(), this_host()
    result = []
    for runner_id, host, pid, started, heartbeat, in_flight, held in rows:
        beat = _utc(heartbeat)
        result.append(
            RunnerInfo(
                id=runner_id,
                host=host,
                pid=pid,
                started=_utc(started),
                heartbeat=beat,
                stale=beat < now - stale_after or (host == here and not pid_alive(pid)),
                in_flight=int(in_flight),
                leases=int(held),
            )
        )
    return result


def _utc(text: str) -> datetime:
    """A stored datetime (naive UTC text, see models.UTCDateTime) as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
