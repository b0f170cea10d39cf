"""B3 submit: `changeclothes submit` of a 1,000,000-row CSV against `sqlite-utils insert --csv`.

All load the same file into a fresh SQLite database; each is timed as its own process, with
its peak resident memory from wait4. The goal: `submit` faster than `sqlite-utils insert
--csv` (which checks nothing) while it validates every row, computes each row's dedupe key,
links identical rows and keeps the queue's indexes, in at most 100 MB. The sqlite3 shell's
`.import` (a bare copy of text, in C) is shown too, as the floor.

The sides take turns (runner, sqlite-utils, runner, ... with `--repeat`), so that load from
elsewhere on the machine falls on both; the median run of each side is reported.

    python bench/b3_submit.py [--quick] [--repeat N]

sqlite-utils is a benchmark-only dependency: `pip install -e '.[bench]'` (`make bench` does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import common

RSS_GOAL_MB = 100


def sqlite_utils_cli() -> str:
    beside = Path(sys.executable).with_name("sqlite-utils")
    found = str(beside) if beside.exists() else shutil.which("sqlite-utils")
    if found is None:
        raise SystemExit("sqlite-utils is missing: pip install -e '.[bench]' (make bench does)")
    return found


def median_run(runs: list[common.ChildRun]) -> common.ChildRun:
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def measure(rows: int, repeat: int = 1, profile: bool = False) -> dict[str, Any]:
    work = common.WORK / "b3"
    work.mkdir(parents=True, exist_ok=True)
    with common.step(f"manifest of {rows:,} rows"):
        manifest = common.big_manifest(rows)
    size_mb = manifest.stat().st_size / 1e6
    utils = sqlite_utils_cli()

    db = work / f"queue-{rows}.db"
    plain = work / f"plain-{rows}.db"
    runners: list[common.ChildRun] = []
    others: list[common.ChildRun] = []
    stdout = ""
    for turn in range(repeat):
        common.remove_db(db)
        with common.step(f"changeclothes submit ({turn + 1}/{repeat})"):
            argv = common.runner_cli(
                "submit",
                str(manifest),
                "--db",
                str(db),
                profile=common.profile_path(f"b3-submit-{rows}", profile and turn == 0),
            )
            runners.append(common.run_child(argv).check())
        stdout = runners[-1].stdout
        common.remove_db(plain)
        with common.step(f"sqlite-utils insert --csv ({turn + 1}/{repeat})"):
            others.append(
                common.run_child(
                    [utils, "insert", str(plain), "jobs", str(manifest), "--csv"]
                ).check()
            )
    print("   ", stdout.strip().replace("\n", "\n    "))
    counted = common.run_child([utils, "query", str(plain), "SELECT count(*) AS n FROM jobs"])
    utils_rows = int(json.loads(counted.check().stdout)[0]["n"])
    common.remove_db(plain)

    sqlite3 = shutil.which("sqlite3")
    shell: dict[str, Any] | None = None
    if sqlite3 is not None:
        with common.step("sqlite3 .import"):
            done = common.run_child(
                [sqlite3, str(plain), ".mode csv", f".import {manifest} t"]
            ).check()
        shell = done.summary()
        common.remove_db(plain)

    runner, other = median_run(runners), median_run(others)
    return {
        "rows": rows,
        "repeat": repeat,
        "manifest_mb": round(size_mb, 1),
        "db": str(db),
        "db_mb": round(db.stat().st_size / 1e6, 1),
        "runner": runner.summary(),
        "runner_walls": [round(r.wall, 2) for r in runners],
        "sqlite_utils": {**other.summary(), "rows": utils_rows},
        "sqlite_utils_walls": [round(r.wall, 2) for r in others],
        "sqlite3": shell,
        "runner_rows_per_s": rows / runner.wall,
        "sqlite_utils_rows_per_s": rows / other.wall,
        # < 1: submit took less time than sqlite-utils on the same file (the goal)
        "time_ratio": runner.wall / other.wall,
        "cpu_ratio": runner.cpu / other.cpu,
        "rss_ratio": runner.max_rss_mb / other.max_rss_mb,
        "rss_goal_mb": RSS_GOAL_MB,
        "import_time_ratio": runner.wall / shell["wall"] if shell else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke-sized run")
    parser.add_argument("--profile", action="store_true", help="profile the first submit")
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON result")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side (median kept)")
    args = parser.parse_args()
    rows = common.QUICK_BIG_ROWS if args.quick else common.BIG_ROWS
    print(f"B3 submit: {rows:,} rows")
    result = measure(rows, max(1, args.repeat), args.profile)
    r, u = result["runner"], result["sqlite_utils"]
    print(
        f"  submit {r['wall']:.1f} s, peak RSS {r['max_rss_mb']:.0f} MB; "
        f"sqlite-utils insert --csv {u['wall']:.1f} s, {u['max_rss_mb']:.0f} MB; "
        f"time ratio {result['time_ratio']:.2f} (goal < 1), "
        f"CPU ratio {result['cpu_ratio']:.2f}"
    )
    common.write_result("b3_submit", args, result)


if __name__ == "__main__":
    main()
