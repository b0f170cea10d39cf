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
import functools
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
    per_job: Mapping[int, Mapping[str, Any]] | None = None,
    event: Event | Mapping[int, Event] | None = None,
    code: str | sa.ColumnElement[Any] | None = None,
    worker: str | None = None,
    owner: str | None = None,
    returning: Sequence[sa.Column[Any]] = (),
    strict: bool = True,
) -> Moved:
    """Apply transition `name` to the jobs `ids` (each must be in a source state, else
    JobStateError, and the caller's transaction rolls back) or to every job matching `where`
    that is in a source state; returns how many moved and, with `returning`, those columns
    of the moved rows as they are afterwards (always with their id).

    The state change is one UPDATE. `values` are set on every moved job. `per_job` instead
    gives each job its own values (the same columns for every job; a value that is a SQL
    expression must be the same object for all), written by one statement run for many rows.
    The events go in the same transaction: the given `event` (the call or download that
    caused a one-job move; a mapping gives each job of `ids` its own), else one of the
    transition's kind per moved job, carrying `code` (a value, or a column such as the job's
    last error code) and the job's attempts as they were before the move. Linked jobs then
    follow through the transition's `followers`, taking over their leader's outcome.

    With `owner`, only jobs claimed by that runner move: a runner declared dead, whose jobs
    went to others, moves none of them (JobStateError for `ids`). With `strict=False`, jobs
    of `ids` that cannot move are left out instead (the returned rows say which moved), so
    one batch of many jobs' transitions is not undone by one job settled elsewhere.
    """
    transition = TRANSITIONS[name]
    if per_job is not None:
        if ids is not None or where is not None or values or code is not None or returning:
            raise ValueError("per_job goes alone, with an event mapping and an owner at most")
        if isinstance(event, Event):
            raise ValueError("per_job takes one event per job")
        moved = await _apply_each(conn, name, now, per_job, event or {}, owner)
        if strict and moved.count != len(per_job):
            raise await _state_error(conn, name, list(per_job), transition)
        return moved
    if (ids is None) == (where is None):
        raise ValueError("give exactly one of ids and where")
    chosen = sa.and_(
        jobs.c.id.in_(ids) if ids is not None else where,  # type: ignore[arg-type]
        state_is(*transition.sources),
    )
    if owner is not None:
        chosen = sa.and_(chosen, jobs.c.claimed_by == owner)
    sets: dict[str, Any] = {**transition.sets, **(values or {})}
    # Events of the transition's kind: from the moved rows (RETURNING) when the move leaves
    # `attempts` as it was, else read before the move (INSERT ... SELECT).
    from_moved = event is None and transition.event is not None and "attempts" not in sets
    if event is None and transition.event is not None and not from_moved:
        if conn.dialect.name == "postgresql":  # hold the rows so the events match the move
            await conn.execute(sa.select(jobs.c.id).where(chosen).with_for_update())
        await record_events(conn, transition.event, chosen, now, code, worker)
    elif isinstance(event, Event):
        await conn.execute(sa.insert(events), [event.row(now)])
    update = sa.update(jobs).where(chosen).values(state=transition.target, updated_at=now, **sets)
    wanted = _returned(returning, from_moved, event, code)
    if wanted:
        result = await conn.execute(update.returning(*wanted))
        rows = list(result.mappings().all())
        count = len(rows)
    else:
        rows, count = [], int((await conn.execute(update)).rowcount)
    if strict and ids is not None and count != len(set(ids)):
        raise await _state_error(conn, name, ids, transition)
    if from_moved and rows:
        assert transition.event is not None
        await _events_of_moved(conn, transition.event, rows, now, worker)
    elif isinstance(event, Mapping) and (
        given := [event[r["id"]].row(now) for r in rows if r["id"] in event]
    ):
        await conn.execute(sa.insert(events), given)
    if transition.followers is not None and count:
        leaders: Any = (
            [r["id"] for r in rows]
            if rows
            else ids
            if ids is not None
            else sa.select(jobs.c.id).where(state_is(transition.target))
        )
        await _follow(conn, transition.followers, now, leaders, sets)
    return Moved(count, rows)


def _returned(
    returning: Sequence[sa.Column[Any]],
    from_moved: bool,
    event: Event | Mapping[int, Event] | None,
    code: str | sa.ColumnElement[Any] | None,
) -> list[Any]:
    """What the UPDATE returns: the caller's columns, and what the events need."""
    wanted: list[Any] = list(returning)
    if from_moved:
        wanted += [jobs.c.batch_id, jobs.c.attempts, _code(code).label("event_code")]
    elif not isinstance(event, Mapping) and not returning:
        return []
    if jobs.c.id not in wanted:
        wanted.append(jobs.c.id)
    return list(dict.fromkeys(wanted))


def _code(code: str | sa.ColumnElement[Any] | None) -> sa.ColumnElement[Any]:
    return code if isinstance(code, sa.ColumnElement) else sa.literal(code, sa.String)


async def _events_of_moved(
    conn: AsyncConnection,
    kind: EventKind,
    rows: Sequence[RowMapping],
    now: datetime,
    worker: str | None,
) -> None:
    """One event of `kind` per moved row, in one INSERT of many rows. A column `code` is as
    the move left it, so only transitions that keep it (or copy it, as followers do) take
    this path."""
    await conn.execute(
        sa.insert(events),
        [
            {
                "kind": kind.value,
                "at": now,
                "job_id": r["id"],
                "batch_id": r["batch_id"],
                "code": r["event_code"],
                "attempt": r["attempts"],
                "worker": worker,
            }
            for r in rows
        ],
    )


async def _follow(
    conn: AsyncConnection, followers: str, now: datetime, leaders: Any, sets: Mapping[str, Any]
) -> None:
    """Jobs linked to `leaders` take over their outcome: the columns of it the move set, as
    the leader's row now holds them (each follower its own leader's), in one UPDATE whose
    RETURNING gives their events (none at all when no job is linked)."""
    taken = tuple(sorted(_FOLLOWED & set(sets)))
    if not isinstance(leaders, list):
        await apply(
            conn,
            followers,
            now,
            where=jobs.c.linked_job_id.in_(leaders),
            values={column: _LEADERS[column] for column in taken},
            code=_follower_code(taken),
        )
        return
    transition = TRANSITIONS[followers]
    rows = (
        (
            await conn.execute(
                _follow_statement(followers, taken), {"leaders": leaders, "v_now": now}
            )
        )
        .mappings()
        .all()
    )
    if rows:
        assert transition.event is not None
        await _events_of_moved(conn, transition.event, rows, now, None)


def _follower_code(taken: Sequence[str]) -> sa.ColumnElement[Any]:
    """A follower's event carries its leader's error code (copied with the outcome), or OK."""
    if "last_error_code" in taken:
        return sa.func.coalesce(jobs.c.last_error_code, "OK")
    return sa.literal("OK", sa.String)


@functools.cache
def _follow_statement(followers: str, taken: tuple[str, ...]) -> sa.Update:
    """Built once per shape: a statement object reused keeps its compiled form and cache key."""
    transition = TRANSITIONS[followers]
    return (
        sa.update(jobs)
        .where(
            jobs.c.linked_job_id.in_(sa.bindparam("leaders", expanding=True)),
            state_is(*transition.sources),
        )
        .values(
            state=transition.target,
            updated_at=sa.bindparam("v_now", type_=UTCDateTime()),
            **transition.sets,
            **{column: _LEADERS[column] for column in taken},
        )
        .returning(
            jobs.c.id,
            jobs.c.batch_id,
            jobs.c.attempts,
            _follower_code(taken).label("event_code"),
        )
    )


async def _apply_each(
    conn: AsyncConnection,
    name: str,
    now: datetime,
    per_job: Mapping[int, Mapping[str, Any]],
    event: Mapping[int, Event],
    owner: str | None,
) -> Moved:
    """`apply` with values of each job's own: which jobs can move (their rows locked on
    PostgreSQL), then one UPDATE run for all of them, their events in one INSERT, and the
    followers of all of them in one UPDATE. Returns the moved jobs' ids (and attempts, when
    the move computed them)."""
    transition = TRANSITIONS[name]
    first = next(iter(per_job.values()), None)
    if first is None:
        return Moved(0, [])
    bound = tuple(sorted(c for c, v in first.items() if not isinstance(v, sa.ClauseElement)))
    exprs = tuple(sorted((c, v) for c, v in first.items() if isinstance(v, sa.ClauseElement)))
    for values in per_job.values():
        if set(values) != set(first) or any(values[c] is not v for c, v in exprs):
            raise ValueError("every job of per_job sets the same columns the same way")
    pick, update, read_back = _each_statements(name, owner is not None, bound, exprs)
    params: dict[str, Any] = {"ids": list(per_job)}
    if owner is not None:
        params["owner"] = owner
    picked = (await conn.execute(pick, params)).all()
    movable = [r.id for r in picked]
    leaders = [r.id for r in picked if r.followed]
    if not movable:
        return Moved(0, [])
    await conn.execute(
        update,
        [
            {"job_id": job_id, "v_now": now, **{f"v_{c}": per_job[job_id][c] for c in bound}}
            for job_id in movable
        ],
    )
    # Values computed by the database (an attempt charged) are read back for the caller.
    rows: list[Any] = (
        list((await conn.execute(read_back, {"ids": movable})).mappings().all())
        if exprs
        else [{"id": job_id} for job_id in movable]
    )
    if given := [event[j].row(now) for j in movable if j in event]:
        await conn.execute(_INSERT_EVENTS, given)
    if transition.followers is not None and leaders:
        sets = {**transition.sets, **first}
        await _follow(conn, transition.followers, now, leaders, sets)
    return Moved(len(movable), rows)


_INSERT_EVENTS = sa.insert(events)
# Written into the SQL, so the probe matches the partial index of waiting followers.
_LINKED_LITERAL = sa.literal(JobState.LINKED.value, sa.String, literal_execute=True)


@functools.cache
def _each_statements(
    name: str, owned: bool, bound: tuple[str, ...], exprs: tuple[tuple[str, Any], ...]
) -> tuple[sa.Select[Any], sa.Update, sa.Select[Any]]:
    """The statements of `_apply_each` for one shape of values, built once."""
    transition = TRANSITIONS[name]
    chosen = sa.and_(
        jobs.c.id.in_(sa.bindparam("ids", expanding=True)),
        state_is(*transition.sources),
    )
    if owned:
        chosen = sa.and_(chosen, jobs.c.claimed_by == sa.bindparam("owner", type_=sa.String))
    # Whether any job waits for it, asked in the same statement: most settles have no
    # followers, and then the followers' UPDATE is not run at all.
    follower = jobs.alias("follower")
    followed = (
        sa.exists()
        .where(follower.c.linked_job_id == jobs.c.id, follower.c.state == _LINKED_LITERAL)
        .label("followed")
        if transition.followers is not None
        else sa.false().label("followed")
    )
    pick = sa.select(jobs.c.id, followed).where(chosen).order_by(jobs.c.id).with_for_update(of=jobs)
    update = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("job_id"))
        .values(
            {
                **transition.sets,
                **dict(exprs),
                **{c: sa.bindparam(f"v_{c}", type_=jobs.c[c].type) for c in bound},
                "state": transition.target,
                "updated_at": sa.bindparam("v_now", type_=UTCDateTime()),
            }
        )
    )
    read_back = sa.select(jobs.c.id, jobs.c.attempts).where(
        jobs.c.id.in_(sa.bindparam("ids", expanding=True))
    )
    return pick, update, read_back


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

_leader = jobs.alias("leader")
_LEADERS = {
    column: sa.select(_leader.c[column])
    .where(_leader.c.id == jobs.c.linked_job_id)
    .scalar_subquery()
    for column in _FOLLOWED
}
"""Each of those columns as a linked job's leader holds it (built once: an alias is costly)."""


_STRANDED = {
    # A done leader's followers take its whole outcome, a failed one's its error and end.
    JobState.DONE: ("linked_done", {**TRANSITIONS["done"].sets, **dict.fromkeys(_FOLLOWED)}),
    JobState.FAILED: (
        "linked_fail",
        dict.fromkeys(("finished_at", "last_error_code", "last_error_message")),
    ),
}
_waited_for = jobs.alias("waited_for")
STRANDED_LEADERS = sa.select(_waited_for.c.id, _waited_for.c.state).where(
    _waited_for.c.id.in_(
        sa.select(jobs.c.linked_job_id).where(state_is(JobState.LINKED), jobs.c.linked_job_id > 0)
    ),
    # `|| ''`: no index on the state of all jobs drives this, only the leaders' ids do.
    (_waited_for.c.state + "").in_(
        sa.bindparam("finals", sorted(_STRANDED), expanding=True, literal_execute=True)
    ),
)
"""Leaders that already ended while jobs still wait for them: followers left behind when
they were linked while the leader's settle was deciding whether anyone followed it (on
PostgreSQL that probe sees its statement's snapshot, not a follower committed while it
waited for the leader's row). The waiting jobs come from the partial index of waiting jobs
(ix_jobs_linked_waiting, matched by the literal `state = 'linked'`), which holds just the
column asked for."""


async def settle_stranded(conn: AsyncConnection, now: datetime) -> int:
    """Followers of the leaders of STRANDED_LEADERS take their outcome as `_follow` gives it
    when the leader settles (done with its result, or failed with its error), each with its
    event; how many leaders had some."""
    rows = (await conn.execute(STRANDED_LEADERS)).all()
    for state, (followers, sets) in _STRANDED.items():
        if leaders := sorted(r.id for r in rows if r.state == state):
            await _follow(conn, followers, now, leaders, sets)
    return len(rows)


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
