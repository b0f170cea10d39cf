"""Several `run` processes on one queue and one account: the account's limit holds across
them, a dead runner's lease and job pass to a live one, a live runner's jobs are never taken,
and a runner that was paused past the stale bound neither pays again nor writes.

Real subprocesses (`python -m runner run`), the local fake, a real SQLite file or the
PostgreSQL of CHANGECLOTHES_TEST_PG. Kills and pauses are triggered by events (the fake's
calls in flight, rows in the database), never by guessed sleeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from anyio.abc import ByteReceiveStream, Process
from sqlalchemy.exc import DBAPIError

from runner.fake import FakeServer, serve_fake
from runner.store import StoreError, open_store
from runner.store.models import accounts, events, jobs, leases
from runner.store.models import runners as runners_table
from tests.run_support import all_jobs, submit, write_manifest
from tests.store_fixtures import database_for
from tests.subprocess_support import runner_command, runner_env

pytestmark = [pytest.mark.anyio, pytest.mark.soak]

# A runner on another host would be found dead by its heartbeat alone; here the paused one
# is: a bound short enough for a test, long enough for a loaded machine's live runners.
STALE = "4s"


def worker_id(process: Process) -> str:
    """The id a `run` registers under: its host and process id (the default --worker)."""
    return f"{socket.gethostname()}-{process.pid}"


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for an event: `check` is asked again and again until it holds."""
    with anyio.fail_after(90):
        while not await check():
            await anyio.sleep(0.02)
    assert await check(), what


async def set_account(db: str, concurrency: int) -> None:
    done = await anyio.run_process(
        [sys.executable, "-m", "runner", "account", "set-concurrency", str(concurrency)]
        + ["--db", db],
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()


@asynccontextmanager
async def runners(
    db: str, out: Path, server: FakeServer, shares: list[int], *extra: str
) -> AsyncIterator[list[Process]]:
    """Start one `run` per share (its --concurrency); any still running at the end is killed."""
    started: list[Process] = []
    try:
        for share in shares:
            command = [*runner_command(db, out, server, share), "--stale-after", STALE, *extra]
            started.append(
                await anyio.open_process(
                    command, env=runner_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            with anyio.CancelScope(shield=True):
                await process.aclose()


async def finish(process: Process) -> tuple[int, str]:
    """Wait for a runner to end; its exit code and what it logged. Both pipes are read at
    once (a full one would stall the runner), and a runner still going after a generous
    bound fails the test (a hang, not a timing assertion)."""
    assert process.stderr is not None and process.stdout is not None
    logged: dict[str, bytes] = {}

    async def drain(name: str, stream: ByteReceiveStream) -> None:
        logged[name] = b"".join([chunk async for chunk in stream])

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, "err", process.stderr)
            tg.start_soon(drain, "out", process.stdout)
        code = await process.wait()
    return code, (logged["err"] + logged["out"]).decode(errors="replace")


async def scalar(db: str, query: Any) -> Any:
    async with reading(db) as read:
        return await read(query)


@asynccontextmanager
async def reading(db: str) -> AsyncIterator[Callable[[Any], Awaitable[Any]]]:
    """One open store for many quick reads while runners work (a check must be cheap, or
    it samples too seldom to catch the moment it waits for)."""
    store = await open_store(db)

    async def read(query: Any) -> Any:
        async with store.transaction() as conn:
            return await conn.scalar(query)

    try:
        yield read
    finally:
        await store.close()


def results_written(out: Path) -> dict[Path, tuple[int, int]]:
    """Each result file (and folder) with its inode and time of change: a file written again
    under the same name gets a new inode (results are renamed into place)."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if not p.name.startswith(".changeclothes-paid-")  # the runner's own journal
        and not p.match("run-*.json")  # each run's summary
    }


async def holds_no_lock(db: str, runner_id: str) -> bool:
    """Is the (paused) runner outside any write transaction?"""
    if "://" not in db:
        return await anyio.to_thread.run_sync(write_lock_free, db)
    store = await open_store(db)
    try:
        async with store.transaction() as conn:
            await conn.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
            for key in (runners_table.c.id, accounts.c.name):
                await conn.execute(sa.select(key).with_for_update())
            await conn.execute(
                sa.select(jobs.c.id).where(jobs.c.claimed_by == runner_id).with_for_update()
            )
        return True
    except (StoreError, DBAPIError):  # a lock wait timed out
        return False
    finally:
        await store.close()


def write_lock_free(db: str) -> bool:
    with contextlib.closing(sqlite3.connect(db, timeout=0.5, isolation_level=None)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        conn.execute("ROLLBACK")
        return True


def assert_every_file_whole_and_once(out: Path, rows: list[Any], stats: dict[str, Any]) -> None:
    served = {d["sha256"] for d in stats["downloads"]}
    for job in rows:
        path = Path(job["output_path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == job["sha256"] in served
    files = sorted(
        p.name
        for p in out.rglob("*")
        if p.is_file()
        and not p.name.startswith(".changeclothes-paid-")  # a halted run's journal
        and not p.match("run-*.json")  # each run's summary
    )
    assert files == sorted(f"{j['external_id']}.jpg" for j in rows), "a file too many or too few"


@pytest.mark.parametrize(
    ("backend", "count"),
    [("sqlite", 2), pytest.param("postgresql", 3, marks=pytest.mark.pg)],
)
async def test_runners_together_keep_to_the_account_limit(
    tmp_path: Path, backend: str, count: int
) -> None:
    async with (
        database_for(backend, tmp_path) as db,
        serve_fake(concurrency=2, latency=0.15, seed=5) as server,
    ):
        await submit(db, write_manifest(tmp_path / "m.csv", 30), server.url + "/")
        await set_account(db, 2)
        async with runners(db, tmp_path / "out", server, [2] * count) as started:
            ended = [await finish(p) for p in started]
        stats = server.stats()
        rows = await all_jobs(db)
    assert [code for code, _ in ended] == [0] * count, [log[-1500:] for _, log in ended]
    assert [j["state"] for j in rows] == ["done"] * 30
    assert stats["max_in_flight"] <= 2
    assert stats["limit_violations"] == 0, "the fake answered JobNumExceed"
    assert stats["calls"] == {"OK": 30}, "a job was paid for twice"
    assert_every_file_whole_and_once(tmp_path / "out", rows, stats)


@pytest.mark.parametrize(
    ("backend", "count"),
    [("sqlite", 2), pytest.param("postgresql", 3, marks=pytest.mark.pg)],
)
async def test_a_killed_runners_lease_and_job_pass_to_a_live_one(
    tmp_path: Path, backend: str, count: int
) -> None:
    jobs_total = 40
    async with (
        database_for(backend, tmp_path) as db,
        serve_fake(concurrency=2, latency=0.5, seed=6) as server,
    ):
        await submit(db, write_manifest(tmp_path / "m.csv", jobs_total), server.url + "/")
        await set_account(db, 2)
        # The victim has one call at most: it dies holding one lease, for one job, killed
        # the moment it holds it (waiting for the others to be at work at that same moment
        # would depend on who wins the leases on a loaded machine). The others start then.
        async with (
            reading(db) as read,
            runners(db, tmp_path / "out", server, [1]) as (victim,),
        ):
            held = sa.select(leases.c.job_id).where(leases.c.runner_id == worker_id(victim))

            async def victim_calls() -> bool:
                return server.stats()["in_flight"] > 0 and await read(held) is not None

            await until(victim_calls, "the victim never held a lease")
            job_id = await read(held)
            victim.kill()
            await victim.wait()
            async with runners(db, tmp_path / "out", server, [2] * (count - 1)) as others:
                ended = [await finish(p) for p in others]
        stats = server.stats()
        rows = await all_jobs(db)
        taken_back = await scalar(
            db,
            sa.select(sa.func.count()).where(
                events.c.kind == "recovered", events.c.job_id == job_id
            ),
        )
        leases_left = await scalar(db, sa.select(sa.func.count()).select_from(leases))
    assert [code for code, _ in ended] == [0] * (count - 1), [log[-1500:] for _, log in ended]
    assert [j["state"] for j in rows] == ["done"] * jobs_total
    assert taken_back == 1, f"the victim's job {job_id} was not taken back: {rows[job_id - 1]}"
    assert leases_left == 0
    assert stats["max_in_flight"] <= 2 and stats["limit_violations"] == 0
    assert stats["calls"]["OK"] <= jobs_total + 1
    assert_every_file_whole_and_once(tmp_path / "out", rows, stats)


async def test_a_second_run_started_mid_flight_pays_nothing_twice(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    total = 16
    async with serve_fake(concurrency=4, latency=0.4, seed=7) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", total), server.url + "/")
        async with runners(db, tmp_path / "out", server, [2]) as first:

            async def both_calls_in_flight() -> bool:
                return server.stats()["in_flight"] == 2

            await until(both_calls_in_flight, "the first run never had two calls in flight")
            async with runners(db, tmp_path / "out", server, [2]) as second:
                ended = [await finish(first[0]), await finish(second[0])]
        stats = server.stats()
        rows = await all_jobs(db)
        recovered = await scalar(db, sa.select(sa.func.count()).where(events.c.kind == "recovered"))
    assert [code for code, _ in ended] == [0, 0], [log[-1500:] for _, log in ended]
    assert [j["state"] for j in rows] == ["done"] * total
    assert stats["calls"].get("OK") == total, "paid calls must equal jobs"
    assert recovered == 0
    for _, log in ended:
        assert "settled elsewhere" not in log
        assert "cut short" not in log


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_a_paused_runner_is_taken_over_and_neither_pays_nor_writes(
    tmp_path: Path, backend: str
) -> None:
    out = tmp_path / "out"
    total = 10
    async with (
        database_for(backend, tmp_path) as db,
        serve_fake(concurrency=2, latency=1.0, seed=9) as server,
    ):
        await submit(db, write_manifest(tmp_path / "m.csv", total), server.url + "/")
        async with reading(db) as read, runners(db, out, server, [1]) as paused:
            claimed = sa.select(sa.func.count()).where(
                jobs.c.claimed_by == worker_id(paused[0]), jobs.c.state == "submitting"
            )

            async def its_call_in_flight() -> bool:
                # One call on the wire and the next job claimed: the runner now waits for
                # its slot, outside any transaction. A call's second leaves the (cheap,
                # one-store) check many chances to see that on a loaded machine.
                return server.stats()["in_flight"] == 1 and await read(claimed) == 2

            # Paused with a call in flight, and outside a write: a process stopped inside
            # one would hold the SQLite file's write lock, or its row's lock on PostgreSQL,
            # which no runner can take back until it resumes.
            while True:
                await until(its_call_in_flight, "the runner never sent a call")
                paused[0].send_signal(signal.SIGSTOP)
                if await holds_no_lock(db, worker_id(paused[0])):
                    break
                paused[0].send_signal(signal.SIGCONT)
            mine = sa.select(jobs.c.id).where(jobs.c.claimed_by == worker_id(paused[0]))
            its_job = await scalar(db, mine)
            assert its_job is not None
            async with runners(db, out, server, [1]) as other:
                other_code, other_log = await finish(other[0])
            assert other_code == 0, other_log[-1500:]
            calls_before = dict(server.stats()["calls"])
            files_before = results_written(out)
            paused[0].send_signal(signal.SIGCONT)
            code, log = await finish(paused[0])
        stats = server.stats()
        rows = await all_jobs(db)
    assert code == 5 and "declared dead" in log, log[-1500:]
    assert [j["state"] for j in rows] == ["done"] * total
    assert stats["calls"] == calls_before, "the resumed runner paid for a call again"
    assert stats["calls"]["OK"] <= total + 1
    assert results_written(out) == files_before, "the resumed runner wrote a result"
    assert_every_file_whole_and_once(out, rows, stats)
