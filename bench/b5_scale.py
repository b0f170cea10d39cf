"""B5 scale: does a run slow down as the queue grows?

`changeclothes run --max-jobs 400` at latency 0, C = 32, against queues of 10,000, 100,000
and 1,000,000 jobs: jobs per second at the largest size divided by jobs per second at the
smallest. On SQLite every job queued, after `ANALYZE` (which `PRAGMA optimize`, recommended
practice, also produces: with every job in one state, its statistics once sent settling
through the whole table); on PostgreSQL, when one answers (CHANGECLOTHES_BENCH_PG, default
postgresql://postgres@127.0.0.1:5432/postgres), 90 % of the jobs done (updated from queued,
as a queue worked through leaves them) and nothing vacuumed (autovacuum off for `jobs`).

The queues are built with bulk SQL (submit's speed is B3's business). Each size runs twice,
smallest to largest and back, so that a drift in the machine's load does not tilt the ratio;
jobs per second is in-run (first call sent to last result recorded, from the queue).

    python bench/b5_scale.py [--quick] [--runner-path DIR]

`--runner-path` runs another checkout's runner (e.g. the commit before a change) for a
before/after comparison; the queues are built the same way for both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common

CONCURRENCY = 32
MAX_JOBS = 400
DONE_SHARE = {"sqlite": 0.0, "postgresql": 0.9}
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
PG_ENV = "CHANGECLOTHES_BENCH_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
JOB_COLUMNS = common.BULK_JOB_COLUMNS


def pg_base() -> str | None:
    """The PostgreSQL server to use (asyncpg's URL form), or None when none answers."""
    url = os.environ.get(PG_ENV, PG_DEFAULT).replace("postgresql+asyncpg://", "postgresql://")
    try:
        with socket.create_connection(("127.0.0.1", 5432), 1):
            return url
    except OSError:
        return None if PG_ENV not in os.environ else url


# -- building a queue ---------------------------------------------------------------------


def upgrade(db: str, env: dict[str, str]) -> None:
    common.run_child(common.runner_cli("db", "upgrade", "--db", db), env=env).check()


def build_sqlite(path: Path, size: int, images_url: str, env: dict[str, str]) -> str:
    common.remove_db(path)
    upgrade(str(path), env)
    common.bulk_sqlite_jobs(path, size, images_url, DONE_SHARE["sqlite"])
    return str(path)


async def build_pg(base: str, name: str, size: int, images_url: str, env: dict[str, str]) -> str:
    import asyncpg

    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = base.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(upgrade, url, env)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")
        batch = await conn.fetchval(
            "INSERT INTO batches (name, source_path, content_sha256, submitted_at, options) "
            "VALUES ('scale', 'bulk', $1, now(), '{}') RETURNING id",
            "0" * 64,
        )
        await conn.execute(
            f"INSERT INTO jobs ({JOB_COLUMNS}) SELECT {batch}, 'job-' || lpad(i::text, 7, '0'),"
            f" '{images_url}model-0' || (i % 6 + 1) || '.jpg?row=' || i,"
            f" '{images_url}clothes-' || lpad((i % 12 + 1)::text, 2, '0') || '.jpg', 'Dress',"
            f" '{{}}', lpad(i::text, 64, '0'), 'queued', 0, 0, now(), now()"
            f" FROM generate_series(0, {size - 1}) AS i"
        )
        # Worked through: the oldest 90 % done, leaving their dead versions behind.
        await conn.execute(
            f"UPDATE jobs SET state = 'done', finished_at = NULL WHERE id < "
            f"(SELECT min(id) FROM jobs) + {int(size * DONE_SHARE['postgresql'])}"
        )
    finally:
        await conn.close()
    return url


async def drop_pg(base: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- one timed run ------------------------------------------------------------------------


async def window(db: str, since: datetime | None) -> tuple[float | None, int]:
    """Seconds from the first call sent to the last job done by runs after `since` (the
    bulk-built jobs have no finish time), and how many jobs those runs finished."""
    if db.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            calls = await conn.fetch("SELECT at, latency_ms FROM events WHERE kind = 'call'")
            ends = await conn.fetch(
                "SELECT finished_at FROM jobs WHERE state = 'done' AND finished_at IS NOT NULL"
            )
        finally:
            await conn.close()
        call_times = [(r["at"].replace(tzinfo=None), r["latency_ms"]) for r in calls]
        finished = [r["finished_at"].replace(tzinfo=None) for r in ends]
    else:
        with contextlib.closing(sqlite3.connect(db)) as sconn:
            rows = sconn.execute("SELECT at, latency_ms FROM events WHERE kind = 'call'")
            call_times = [(datetime.fromisoformat(at), ms) for at, ms in rows]
            finished = [
                datetime.fromisoformat(f)
                for (f,) in sconn.execute(
                    "SELECT finished_at FROM jobs WHERE state = 'done' AND finished_at IS NOT NULL"
                )
            ]
    if since is not None:
        call_times = [(at, ms) for at, ms in call_times if at >= since]
        finished = [f for f in finished if f >= since]
    if not call_times or not finished:
        return None, len(finished)
    first = min(at - timedelta(milliseconds=ms or 0) for at, ms in call_times)
    return (max(finished) - first).total_seconds(), len(finished)


def run_once(
    srv: common.FakeServerProcess, db: str, size: int, backend: str, env: dict[str, str]
) -> dict[str, Any]:
    out = common.fresh_dir(common.WORK / "b5" / f"out-{backend}-{size}")
    since = datetime.now(UTC).replace(tzinfo=None)
    argv = common.runner_cli(
        "run",
        "--endpoint",
        srv.url,
        "--concurrency",
        str(CONCURRENCY),
        "--max-jobs",
        str(MAX_JOBS),
        "--db",
        db,
        "--out",
        str(out),
    )
    child = common.run_child(argv, env=env).check(ok=(0, 4))
    seconds, finished = asyncio.run(window(db, since))
    return {
        "process": child.summary(),
        "in_run_seconds": seconds,
        "finished": finished,
        "jobs_per_s": common.ratio(finished, seconds),
    }


def measure(sizes: tuple[int, ...], env: dict[str, str], only: str | None) -> dict[str, Any]:
    backends: list[str] = ["sqlite"]
    base = pg_base()
    if base is not None:
        backends.append("postgresql")
    if only is not None:
        backends = [b for b in backends if b == only]
    result: dict[str, Any] = {"sizes": list(sizes), "max_jobs": MAX_JOBS, "c": CONCURRENCY}
    for backend in backends:
        print(f"B5 {backend}: queues of {', '.join(f'{s:,}' for s in sizes)} jobs")
        # One fake server for the backend's runs: the jobs point at its images.
        srv = common.FakeServerProcess(concurrency=CONCURRENCY, latency=0.0, ttl=600, seed=5)
        images_url = srv.images_url
        dbs: dict[int, str] = {}
        names = {s: f"cc_bench_b5_{s}" for s in sizes}
        try:
            for size in sizes:
                with common.step(f"building {size:,} jobs ({backend})"):
                    if backend == "sqlite":
                        path = common.WORK / "b5" / f"queue-{size}.db"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        dbs[size] = build_sqlite(path, size, images_url, env)
                    else:
                        assert base is not None
                        dbs[size] = asyncio.run(build_pg(base, names[size], size, images_url, env))
            runs: dict[int, list[dict[str, Any]]] = {s: [] for s in sizes}
            for size in (*sizes, *reversed(sizes)):
                with common.step(f"run --max-jobs {MAX_JOBS} on {size:,} jobs ({backend})"):
                    runs[size].append(run_once(srv, dbs[size], size, backend, env))
                print(f"    {runs[size][-1]['jobs_per_s'] or 0:.1f} jobs/s")
        finally:
            srv.stop()
            if backend == "postgresql" and base is not None:
                for name in names.values():
                    asyncio.run(drop_pg(base, name))
        rates = {}
        for size, done in runs.items():
            jobs = sum(r["finished"] for r in done)
            seconds = sum(r["in_run_seconds"] or 0 for r in done)
            rates[size] = common.ratio(jobs, seconds)
        small, large = min(sizes), max(sizes)
        result[backend] = {
            "runs": {str(s): r for s, r in runs.items()},
            "jobs_per_s": {str(s): r for s, r in rates.items()},
            "ratio": common.ratio(rates[large], rates[small]),
        }
        print(
            f"  {backend}: "
            + ", ".join(f"{s:,}: {common.fmt(r, 1)} jobs/s" for s, r in rates.items())
            + f"; {large:,} ÷ {small:,} = {common.fmt(result[backend]['ratio'])}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="sizes 10,000 and 100,000 only")
    parser.add_argument("--profile", action="store_true", help="(not used by B5)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON")
    parser.add_argument(
        "--runner-path", type=Path, default=None, help="run the runner of this checkout"
    )
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    args = parser.parse_args()
    env = common.child_env()
    if args.runner_path is not None:
        env["PYTHONPATH"] = str(args.runner_path.resolve())
    started = time.perf_counter()
    result = measure(QUICK_SIZES if args.quick else FULL_SIZES, env, args.only)
    result["runner_path"] = str(args.runner_path) if args.runner_path else None
    result["seconds"] = time.perf_counter() - started
    common.write_result("b5_scale", args, result)


if __name__ == "__main__":
    main()
