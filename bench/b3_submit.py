"""B3 submit: `changeclothes submit` of a 1,000,000-row CSV against the sqlite3 shell's `.import`.

Both load the same file into a fresh SQLite database; each is timed as its own process, with
its peak resident memory from wait4. The runner also validates every row, computes each row's
dedupe key and keeps the queue's indexes; `.import` copies text into a bare table. The ratio
says what that costs.

    python bench/b3_submit.py [--quick]
"""

from __future__ import annotations

import shutil
from typing import Any

import common


def measure(rows: int, profile: bool = False) -> dict[str, Any]:
    work = common.WORK / "b3"
    work.mkdir(parents=True, exist_ok=True)
    with common.step(f"manifest of {rows:,} rows"):
        manifest = common.big_manifest(rows)
    size_mb = manifest.stat().st_size / 1e6

    db = work / f"queue-{rows}.db"
    common.remove_db(db)
    with common.step("changeclothes submit"):
        argv = common.runner_cli(
            "submit",
            str(manifest),
            "--db",
            str(db),
            profile=common.profile_path(f"b3-submit-{rows}", profile),
        )
        runner = common.run_child(argv).check()
    print("   ", runner.stdout.strip().replace("\n", "\n    "))

    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit("the sqlite3 shell is missing: apt-get install -y sqlite3")
    plain = work / f"plain-{rows}.db"
    common.remove_db(plain)
    with common.step("sqlite3 .import"):
        shell = common.run_child(
            [sqlite3, str(plain), ".mode csv", f".import {manifest} t"]
        ).check()
    imported = common.run_child([sqlite3, str(plain), "SELECT count(*) FROM t"]).check()
    common.remove_db(plain)

    return {
        "rows": rows,
        "manifest_mb": round(size_mb, 1),
        "db": str(db),
        "db_mb": round(db.stat().st_size / 1e6, 1),
        "runner": runner.summary(),
        "sqlite3": {**shell.summary(), "rows": int(imported.stdout.strip())},
        "runner_rows_per_s": rows / runner.wall,
        "sqlite3_rows_per_s": rows / shell.wall,
        "time_ratio": runner.wall / shell.wall,  # how many times longer than .import
        "rss_ratio": runner.max_rss_mb / shell.max_rss_mb,
    }


def main() -> None:
    args = common.parse_args(__doc__ or "")
    rows = common.QUICK_BIG_ROWS if args.quick else common.BIG_ROWS
    print(f"B3 submit: {rows:,} rows")
    result = measure(rows, args.profile)
    r, s = result["runner"], result["sqlite3"]
    print(
        f"  submit {r['wall']:.1f} s, peak RSS {r['max_rss_mb']:.0f} MB; "
        f"sqlite3 .import {s['wall']:.1f} s, {s['max_rss_mb']:.0f} MB; "
        f"time ratio {result['time_ratio']:.1f}x, memory ratio {result['rss_ratio']:.1f}x"
    )
    common.write_result("b3_submit", args, result)


if __name__ == "__main__":
    main()
