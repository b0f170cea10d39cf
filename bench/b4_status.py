"""B4 status: `changeclothes status --json` on the 1,000,000-job database of B3.

Timed as its own process (median of a few runs), next to the same counts asked of the sqlite3
shell directly (`SELECT ... GROUP BY batch, state`) and to the CLI's bare start-up
(`changeclothes --help`), which every command pays. Builds the database with B3's submit
when it is missing.

    python bench/b4_status.py [--quick]
"""

from __future__ import annotations

import json
import shutil
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
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        with common.step(f"building the {rows:,}-job database (B3's submit)"):
            common.run_child(
                common.runner_cli("submit", str(common.big_manifest(rows)), "--db", str(db))
            ).check()
    return db


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
    return {
        "rows": rows,
        "jobs_counted": total,
        "status": {**status.summary(), "walls": walls},
        "startup": startup.summary(),
        "sqlite3": {**shell.summary(), "walls": shell_walls},
        "status_seconds": status.wall,
        "status_minus_startup": status.wall - startup.wall,
        "time_ratio": status.wall / shell.wall,
    }


def main() -> None:
    args = common.parse_args(__doc__ or "")
    rows = common.QUICK_BIG_ROWS if args.quick else common.BIG_ROWS
    print(f"B4 status: {rows:,} jobs")
    result = measure(rows, args.profile)
    print(
        f"  status --json {result['status_seconds']:.2f} s "
        f"(CLI start-up {result['startup']['wall']:.2f} s), "
        f"sqlite3 GROUP BY {result['sqlite3']['wall']:.2f} s, "
        f"ratio {result['time_ratio']:.1f}x"
    )
    common.write_result("b4_status", args, result)


if __name__ == "__main__":
    main()
