"""A job's life in one place: its states, the transitions between them, and the one function
that applies a transition (the state change and the events that explain it, in one statement
each and one transaction). Every change of a job's state in the runner goes through `apply`.

    queued ──claim──▶ submitting ──generated──▶ generated ──done──▶ done
      ▲  │              │  └──────────done (base64 result)────────────▲
      │  │              ├── requeue / release ──▶ queued
      │  │              └── fail ──▶ failed ──retry──▶ queued
      │  └──cancel──▶ cancelled ◀──cancel── failed, linked
      ├── expire / recover ◀── generated, submitting
      └── replace ◀── queued, failed, cancelled, linked (and done: replace_done, regenerate)

A `linked` job waits for an identical job (its leader) and follows it: `linked_done`,
`linked_fail`, or `unlink` (back to `queued`, to run on its own) when its leader is cancelled.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from runner.store.errors import JobStateError
from runner.store.models import UTCDateTime, events, jobs
from runner.store.states import FAILED_STATES as FAILED_STATES
from runner.store.states import FINAL_STATES as FINAL_STATES
from runner.store.states import IN_FLIGHT_STATES as IN_FLIGHT_STATES
from runner.store.states import WORK_STATES as WORK_STATES
from runner.store.states import JobState

# The database refuses any other state; a migration changes the check with the enum.
jobs.append_constraint(
    sa.CheckConstraint(
        "state IN ({})".format(", ".join(f"'{s.value}'" for s in JobState)), name="ck_jobs_state"
    )
)

PARTIAL_INDEXES = {
    # claim_next on a busy queue (revision 0006): only claimable jobs are in this index, so a
    # claim never walks the finished ones, however many and however long since the last VACUUM.
    "ix_jobs_claimable": (jobs.c.id, JobState.QUEUED),
    # Settling a job (revision 0007): only the jobs waiting for another are in this index, so
    # finding a job's followers never depends on the planner's guess about a column of NULLs.
    "ix_jobs_linked_waiting": (jobs.c.linked_job_id, JobState.LINKED),
}


def declare_partial_indexes() -> None:
    """Add the partial indexes to the `jobs` table's metadata, for Alembic to compare with
    the migrations (which create them). Not done on import: SQLAlchemy loads a dialect to
    check its index options, and a command on a SQLite queue should not load PostgreSQL's."""
    declared = {index.name for index in jobs.indexes}
    for name, (column, state) in PARTIAL_INDEXES.items():
        if name not in declared:
            only = jobs.c.state == state.value
            sa.Index(name, column, postgresql_where=only, sqlite_where=only)


RARE_STATES = frozenset({JobState.SUBMITTING, JobState.GENERATED})
"""States only the calls and downloads in flight are in: a few hundred jobs at most."""


def state_is(*states: JobState) -> sa.ColumnElement[bool]:
    """`jobs.state` in `states`, written into the SQL as literals rather than bound: a
    planner can then match the partial indexes above by their WHERE clause (SQLite never
    matches `state IN (?)`; PostgreSQL's generic plans match no parameter), whatever its
    statistics say. For the in-flight states SQLite is also told that few jobs are in
    them: its statistics keep one average per index column, and on a queue where every job
    is queued they say each state holds them all, so it would scan the table instead."""
    values = sorted(s.value for s in states)
    if len(values) == 1:
        condition = jobs.c.state == sa.literal(values[0], sa.String, literal_execute=True)
    else:
        condition = jobs.c.state.in_(
            sa.bindparam("states", values, expanding=True, literal_execute=True, unique=True)
        )
    return Rare(condition) if set(states) <= RARE_STATES else condition


class Rare(FunctionElement[bool]):
    """A condition few rows meet: `unlikely(...)` on SQLite (a hint its planner takes
    instead of its statistics), the condition alone elsewhere (PostgreSQL's statistics
    know each state's share)."""

    type = sa.Boolean()
    inherit_cache = True
    name = "unlikely"
    _is_implicitly_boolean = True  # a condition as it is, not compared with 1


@compiles(Rare)
def _rare(element: Rare, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(Rare, "sqlite")
def _rare_sqlite(element: Rare, compiler: SQLCompiler, **kw: Any) -> str:
    return f"unlikely({compiler.process(next(iter(element.clauses)), **kw)})"


class EventKind(enum.StrEnum):
    """What an `events` row records."""

    CALL = "call"  # one API call; code 'OK' (paid) or the error code
    DOWNLOAD = "download"  # one fetch of a result URL; code 'OK' or why it failed
    EXPIRED = "expired"  # a result URL expired before its download: generated again
    RECOVERED = "recovered"  # a call cut short by a crash went back to the queue
    LINKED = "linked"  # a job finished with the identical job it waited for
    RETRY = "retry"  # `changeclothes retry` moved a failed job back (its old code)
    UNLINKED = "unlinked"  # the job it waited for was cancelled: queued to run on its own
    CANCELLED = "cancelled"  # `changeclothes cancel` gave up on the job
    REPLACED = "replaced"  # `submit --replace` gave the job its row's new content


QUEUED_RESET: Mapping[str, Any] = {
    "claimed_by": None,
    "claimed_at": None,
    "result_url": None,
    "result_expires_at": None,
}
"""What a job forgets when it goes back to `queued`: its claim and any result URL."""


RETRY_RESET: Mapping[str, Any] = {
    **QUEUED_RESET,
    "attempts": 0,
    "regenerations": 0,
    "not_before": None,
    "finished_at": None,
}
"""A retried job starts afresh: every bound on its calls counts from zero again."""


FRESH_RESET: Mapping[str, Any] = {
    **RETRY_RESET,
    "linked_job_id": None,
    "last_error_code": None,
    "last_error_message": None,
    "output_path": None,
    "sha256": None,
    "bytes": None,
    "request_id": None,
}
"""A job made again from scratch (new content, or a result a reviewer rejected)."""


@dataclass(frozen=True)
class Transition:
    sources: frozenset[JobState]
    target: JobState
    # The event each moved job gets. None: the caller passes the event that caused the move
    # (the API call or the download), or there is nothing to record (a claim).
    event: EventKind | None
    sets: Mapping[str, Any]  # columns every move sets, besides state and updated_at
    followers: str | None = None  # the transition its linked jobs then take


def _t(
    sources: set[JobState],
    target: JobState,
    event: EventKind | None,
    sets: Mapping[str, Any] | None = None,
    followers: str | None = None,
) -> Transition:
    return Transition(frozenset(sources), target, event, dict(sets or {}), followers)


Q, S, G, D, F, L, C = (
    JobState.QUEUED,
    JobState.SUBMITTING,
    JobState.GENERATED,
    JobState.DONE,
    JobState.FAILED,
    JobState.LINKED,
    JobState.CANCELLED,
)

TRANSITIONS: Mapping[str, Transition] = {
    # A worker takes a due job for one API call.
    "claim": _t({Q}, S, None),
    # The call returned a result URL; the download is still to come (a paid call).
    "generated": _t({S}, G, None),
    # The image is on disk: downloaded, or written from a base64 answer.
    "done": _t({S, G}, D, None, {"last_error_code": None, "last_error_message": None},
               followers="linked_done"),
    # Given up on: a bad row, attempts exhausted, or a result that never came.
    "fail": _t({Q, S, G}, F, None, {"claimed_by": None}, followers="linked_fail"),
    # Try again later: throttled or the endpoint down (uncharged), a transient error (charged).
    "requeue": _t({S, G}, Q, None, QUEUED_RESET),
    # A halt or an interrupt hands the claimed job back untouched.
    "release": _t({S}, Q, None, QUEUED_RESET),
    # The paid result was lost (its URL expired, it would not download, it is no image):
    # generate it again, uncharged; counted, so that a job is paid for a bounded number of times.
    "expire": _t(
        {S, G}, Q, EventKind.EXPIRED, {**QUEUED_RESET, "regenerations": jobs.c.regenerations + 1}
    ),
    # Crash recovery: a call whose answer was never seen goes back to the queue.
    "recover": _t({S}, Q, EventKind.RECOVERED, QUEUED_RESET),
    # A dead runner's result waiting for download passes to a live runner (sets claimed_by).
    "adopt": _t({G}, G, None),
    # `changeclothes retry`: a failed job gets a fresh set of attempts.
    "retry": _t({F}, Q, EventKind.RETRY, RETRY_RESET),
    # ... or, when it was failed with the identical job it waits for, waits for it again.
    "retry_linked": _t({F}, L, EventKind.RETRY, RETRY_RESET),
    # ... or, when that job is done by now, takes its result without a call.
    "retry_reuse": _t({F}, D, EventKind.LINKED,
                      {"attempts": 0, "not_before": None, "last_error_code": None,
                       "last_error_message": None}),
    # `changeclothes cancel`: never to run. Jobs outside the selection that waited for a
    # cancelled job are queued to run on their own.
    "cancel": _t({Q, F, L}, C, EventKind.CANCELLED, {"not_before": None}, followers="unlink"),
    # `submit --replace`: the row changed; the job takes the new content (the caller sets it)
    # and is queued afresh. Jobs that waited for it run on their own.
    "replace": _t({Q, F, C, L}, Q, EventKind.REPLACED, FRESH_RESET, followers="unlink"),
    # ... and with --force, a done one too.
    "replace_done": _t({D}, Q, EventKind.REPLACED, FRESH_RESET),
    # `changeclothes retry --id`: a reviewer rejected a done result: generate it again (paid).
    "regenerate": _t({D}, Q, EventKind.RETRY, FRESH_RESET),
    # Followers of a leader's outcome.
    "linked_done": _t({L}, D, EventKind.LINKED),
    "linked_fail": _t({L}, F, EventKind.LINKED),
    "unlink": _t({L}, Q, EventKind.UNLINKED, {**QUEUED_RESET, "linked_job_id": None}),
}  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One row for the append-only events table, written in the same transaction as the
    state change it explains, so the record of a paid call and its effect never part."""

    kind: EventKind
    job_id: int | None = None
    batch_id: int | None = None
    request_id: str | None = None
    code: str | None = None
    error_class: str | None = None
    latency_ms: int | None = None
    size: int | None = None
    attempt: int | None = None
    worker: str | None = None

    def row(self, at: datetime) -> dict[str, Any]:
        values = asdict(self)
        values["bytes"] = values.pop("size")
        return {**values, "at": at}


async def apply(
    conn: AsyncConnection,
    name: str,
    now: datetime,
    *,
    ids: Sequence[int] | None = None,
    where: sa.ColumnElement[bool] | None = None,
    values: Mapping[str, Any] | None = None,
    event: Event | None = None,
    code: str | sa.ColumnElement[Any] | None = None,
    worker: str | None = None,
    owner: str | None = None,
    returning: Sequence[sa.Column[Any]] = (),
) -> Moved:
    """Apply transition `name` to the jobs `ids` (each must be in a source state, else
    JobStateError, and the caller's transaction rolls back) or to every job matching `where`
    that is in a source state; returns how many moved and, with `returning`, those columns
    of the moved rows as they are afterwards.

    The state change is one UPDATE. The events go in the same transaction: the given `event`
    (the call or download that caused a one-job move), else one of the transition's kind per
    moved job, carrying `code` (a value, or a column such as the job's last error code) and
    the job's attempts as they were before the move. Linked jobs then follow through the
    transition's `followers`.

    With `owner`, only jobs claimed by that runner move: a runner declared dead, whose jobs
    went to others, moves none of them (JobStateError for `ids`).
    """
    transition = TRANSITIONS[name]
    if (ids is None) == (where is None):
        raise ValueError("give exactly one of ids and where")
    chosen = sa.and_(
        jobs.c.id.in_(ids) if ids is not None else where,  # type: ignore[arg-type]
        state_is(*transition.sources),
    )
    if owner is not None:
        chosen = sa.and_(chosen, jobs.c.claimed_by == owner)
    if event is None and transition.event is not None:
        if conn.dialect.name == "postgresql":  # hold the rows so the events match the move
            await conn.execute(sa.select(jobs.c.id).where(chosen).with_for_update())
        await record_events(conn, transition.event, chosen, now, code, worker)
    elif event is not None:
        await conn.execute(sa.insert(events), [event.row(now)])
    sets = {**transition.sets, **(values or {})}
    update = sa.update(jobs).where(chosen).values(state=transition.target, updated_at=now, **sets)
    if returning:
        rows = list((await conn.execute(update.returning(*returning))).mappings().all())
        count = len(rows)
    else:
        rows, count = [], int((await conn.execute(update)).rowcount)
    if ids is not None and count != len(set(ids)):
        raise await _state_error(conn, name, ids, transition)
    if transition.followers is not None and count:
        leaders: Any = (
            ids if ids is not None else sa.select(jobs.c.id).where(state_is(transition.target))
        )
        if await has_followers(conn, leaders):
            await apply(
                conn,
                transition.followers,
                now,
                where=jobs.c.linked_job_id.in_(leaders),
                values={k: v for k, v in sets.items() if k in _FOLLOWED},
                code=sets.get("last_error_code") or "OK",
            )
    return Moved(count, rows)


async def has_followers(conn: AsyncConnection, leaders: Any) -> bool:
    """Does any `linked` job wait for one of `leaders`? One probe of ix_jobs_linked_waiting,
    usually empty, instead of the followers' event insert and update (and row lock)."""
    waiting = sa.and_(jobs.c.linked_job_id.in_(leaders), state_is(JobState.LINKED))
    return bool(await conn.scalar(sa.select(sa.literal(1)).where(waiting).limit(1)))


@dataclass(frozen=True)
class Moved:
    count: int
    rows: list[RowMapping]

    def __bool__(self) -> bool:
        return self.count > 0


_FOLLOWED = frozenset(
    {"output_path", "sha256", "bytes", "finished_at", "last_error_code", "last_error_message"}
)
"""What a linked job takes over from its leader's outcome."""


async def record_events(
    conn: AsyncConnection,
    kind: EventKind,
    chosen: sa.ColumnElement[bool],
    now: datetime,
    code: str | sa.ColumnElement[Any] | None,
    worker: str | None,
) -> None:
    """One event of `kind` per job matching `chosen`, in one INSERT ... SELECT."""
    await conn.execute(
        sa.insert(events).from_select(
            ["kind", "at", "job_id", "batch_id", "code", "attempt", "worker"],
            sa.select(
                sa.literal(kind.value, sa.String),
                sa.literal(now, UTCDateTime()),
                jobs.c.id,
                jobs.c.batch_id,
                code if isinstance(code, sa.ColumnElement) else sa.literal(code, sa.String),
                jobs.c.attempts,
                sa.literal(worker, sa.String),
            ).where(chosen),
        )
    )


async def _state_error(
    conn: AsyncConnection, name: str, ids: Sequence[int], transition: Transition
) -> JobStateError:
    rows = await conn.execute(sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(ids)))
    states = {r.id: r.state for r in rows}
    stuck = next(
        (i for i in ids if states.get(i) not in {*transition.sources, transition.target}),
        ids[0],
    )
    return JobStateError(stuck, name, states.get(stuck))
