"""B4 status: `changeclothes status --json` on a 1,000,000-job database.

Timed as its own process (median of a few runs), next to the same counts asked with
`sqlite-utils query` (the baseline: a general tool's `SELECT ... GROUP BY batch, state`,
installed by `pip install '.[bench]'`), the sqlite3 shell, and the CLI's bare start-up
(`changeclothes --version`), which every command pays. Uses B3's database when B3 ran; else
builds one with bulk SQL (90 % of the jobs done).

    python bench/b4_status.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import common

REPEATS = 3
COUNTS_SQL = (
    "SELECT b.name, j.state, count(*) FROM jobs j JOIN batches b ON b.id = j.batch_id "
    "GROUP BY j.batch_id, j.state"
)


def database(rows: int) -> Path:
    db = common.WORK / "b3" / f"queue-{rows}.db"
    if db.exists():
        return db
    db = common.WORK / "b4" / f"queue-{rows}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        with common.step(f"building the {rows:,}-job database (bulk SQL)"):
            common.run_child(common.runner_cli("db", "upgrade", "--db", str(db))).check()
            common.bulk_sqlite_jobs(db, rows, "https://images.example.com/", 0.9)
    return db


def sqlite_utils() -> str:
    found = Path(sys.executable).parent / "sqlite-utils"
    if not found.exists():
        raise SystemExit("sqlite-utils is missing: pip install -e '.[bench]' (make bench does)")
    return str(found)


def median_run(argv: list[str]) -> tuple[common.ChildRun, list[float]]:
    runs = [common.run_child(argv).check() for _ in range(REPEATS)]
    walls = [r.wall for r in runs]
    middle = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
    return middle, walls


def measure(rows: int, profile: bool) -> dict[str, Any]:
    db = database(rows)
    with common.step("changeclothes status --json"):
        status, walls = median_run(common.runner_cli("status", "--json", "--db", str(db)))
    total = json.loads(status.stdout)["total"]["total"]
    if profile:
        common.run_child(
            common.runner_cli(
                "status",
                "--json",
                "--db",
                str(db),
                profile=common.profile_path(f"b4-status-{rows}", True),
            )
        ).check()
    with common.step("changeclothes --help (start-up)"):
        startup, _ = median_run(common.runner_cli("--version"))
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit("the sqlite3 shell is missing: apt-get install -y sqlite3")
    with common.step("sqlite3 GROUP BY"):
        shell, shell_walls = median_run([sqlite3, str(db), COUNTS_SQL])
    with common.step("sqlite-utils query GROUP BY"):
        utils, utils_walls = median_run([sqlite_utils(), "query", str(db), COUNTS_SQL])
    return {
        "rows": rows,
        "jobs_counted": total,
        "status": {**status.summary(), "walls": walls},
        "startup": startup.summary(),
        "sqlite3": {**shell.summary(), "walls": shell_walls},
        "sqlite_utils": {**utils.summary(), "walls": utils_walls},
        "status_seconds": status.wall,
        "status_minus_startup": status.wall - startup.wall,
        "time_ratio": status.wall / utils.wall,
        "time_ratio_sqlite3": status.wall / shell.wall,
    }


def main() -> None:
    args = common.parse_args(__doc__ or "")
    rows = common.QUICK_BIG_ROWS if args.quick else common.BIG_ROWS
    print(f"B4 status: {rows:,} jobs")
    result = measure(rows, args.profile)
    print(
        f"  status --json {result['status_seconds']:.2f} s "
        f"(CLI start-up {result['startup']['wall']:.2f} s), "
        f"sqlite-utils query {result['sqlite_utils']['wall']:.2f} s, "
        f"sqlite3 shell {result['sqlite3']['wall']:.2f} s; "
        f"ratio to sqlite-utils {result['time_ratio']:.2f}"
    )
    common.write_result("b4_status", args, result)


if __name__ == "__main__":
    main()
