"""`make bench`: run every benchmark, then write bench/results.md.

Each benchmark runs as its own script and process, writing its measurements as JSON under
bench/work/results/; this collects them into one table of ratios with the date, the Python
version and the CPU count. Nothing here passes or fails on time: a benchmark that breaks is
reported as such and the others still run.

    python bench/run_all.py            # full size (what `make bench` runs), ~10 minutes
    python bench/run_all.py --quick    # smoke-sized; writes bench/work/results-quick.md
    python bench/run_all.py --only b1_slots,b2_overhead
    python bench/run_all.py --render-only   # rewrite results.md from the last JSON results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import common

BENCHMARKS = ("b1_slots", "b2_overhead", "b3_submit", "b4_status", "b5_scale")
PROFILE_NOTES = common.BENCH / "profile.md"


def run_benchmarks(names: list[str], quick: bool) -> dict[str, dict[str, Any] | str]:
    """Run each script; its JSON result, or the reason it has none."""
    results: dict[str, dict[str, Any] | str] = {}
    for name in names:
        output = common.RESULTS / f"{name}{'.quick' if quick else ''}.json"
        output.unlink(missing_ok=True)
        argv = [common.PYTHON, str(common.BENCH / f"{name}.py"), "--output", str(output)]
        if quick:
            argv.append("--quick")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=common.ROOT, check=False)
        print(f"== {name}: {time.perf_counter() - started:.0f} s\n", flush=True)
        if done.returncode != 0 or not output.exists():
            results[name] = f"failed (exit {done.returncode}; see the output above)"
        else:
            results[name] = json.loads(output.read_text())
    return results


def load_results(names: list[str], quick: bool) -> dict[str, dict[str, Any] | str]:
    results: dict[str, dict[str, Any] | str] = {}
    for name in names:
        path = common.RESULTS / f"{name}{'.quick' if quick else ''}.json"
        results[name] = json.loads(path.read_text()) if path.exists() else "not run"
    return results


def calls(by_code: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(by_code.items()))


def f(value: float | None, digits: int = 2) -> str:
    return common.fmt(value, digits)


def table(results: dict[str, dict[str, Any] | str]) -> list[str]:
    rows: list[tuple[str, str, str, str, str]] = []

    b1 = results.get("b1_slots")
    if isinstance(b1, dict):
        for case in b1["cases"]:
            r, s = case["runner"], case["sdk"]
            rows.append(
                (
                    f"B1 slot utilisation, N={case['n']} C={case['c']} "
                    f"(ideal N·L/C = {case['ideal_seconds']:.0f} s)",
                    f"**{f(case['runner_utilisation_in_run'], 3)}** in-run; "
                    f"{f(case['runner_utilisation'], 3)} whole process "
                    f"({r['process']['wall']:.1f} s)",
                    f"{f(case['sdk_utilisation_in_run'], 3)} in-run; "
                    f"{f(case['sdk_utilisation'], 3)} whole process "
                    f"({s['process']['wall']:.1f} s)",
                    f"runner {case['speedup']:.2f}× faster",
                    "runner ≥ 0.97",
                )
            )
    elif b1 is not None:
        rows.append(("B1 slot utilisation", str(b1), "", "", ""))

    b2 = results.get("b2_overhead")
    if isinstance(b2, dict):
        r, b = b2["runner"], b2["bare"]
        rows.append(
            (
                f"B2 overhead, latency 0, C={b2['c']}, N={b2['n']:,} (jobs/s)",
                f"{r['jobs_per_s']:.0f} jobs/s ({f(r['jobs_per_s_in_run'], 0)} in-run); "
                f"{r['cpu_ms_per_job']:.1f} ms CPU/job",
                f"{b['jobs_per_s']:.0f} jobs/s ({f(b['jobs_per_s_in_run'], 0)} in-run); "
                f"{b['cpu_ms_per_job']:.1f} ms CPU/job",
                f"**{b2['throughput_ratio']:.2f}** of the bare loop's rate "
                f"({f(b2['throughput_ratio_in_run'])} in-run)",
                "≥ 0.5; CPU per job reported",
            )
        )
    elif b2 is not None:
        rows.append(("B2 overhead", str(b2), "", "", ""))

    b3 = results.get("b3_submit")
    if isinstance(b3, dict):
        r, u = b3["runner"], b3["sqlite_utils"]
        rows.append(
            (
                f"B3 submit, {b3['rows']:,}-row CSV ({b3['manifest_mb']:.0f} MB)",
                f"{r['wall']:.1f} s, peak RSS {r['max_rss_mb']:.0f} MB, "
                f"{r['user'] + r['system']:.1f} s CPU",
                f"`sqlite-utils insert --csv`: {u['wall']:.1f} s, peak RSS "
                f"{u['max_rss_mb']:.0f} MB, {u['user'] + u['system']:.1f} s CPU",
                f"**{b3['time_ratio']:.2f}×** the time, {b3['cpu_ratio']:.2f}× the CPU",
                f"< 1× the time, RSS ≤ {b3['rss_goal_mb']} MB",
            )
        )
    elif b3 is not None:
        rows.append(("B3 submit", str(b3), "", "", ""))

    b4 = results.get("b4_status")
    if isinstance(b4, dict) and "sqlite_utils" in b4:
        rows.append(
            (
                f"B4 `status --json`, {b4['rows']:,} jobs",
                f"{b4['status_seconds']:.2f} s (CLI start-up alone {b4['startup']['wall']:.2f} s)",
                f"`sqlite-utils query`, same GROUP BY: {b4['sqlite_utils']['wall']:.2f} s "
                f"(sqlite3 shell {b4['sqlite3']['wall']:.2f} s)",
                f"**{b4['time_ratio']:.2f}×** the time",
                "≤ 1.0",
            )
        )
    elif b4 is not None:
        rows.append(("B4 status", str(b4), "", "", ""))

    b5 = results.get("b5_scale")
    if isinstance(b5, dict):
        sizes = b5["sizes"]
        for backend, label in (
            ("sqlite", "SQLite, all queued, after ANALYZE"),
            ("postgresql", "PostgreSQL, 90 % done, not vacuumed"),
        ):
            side = b5.get(backend)
            if not isinstance(side, dict):
                continue
            rates = side["jobs_per_s"]
            rows.append(
                (
                    f"B5 scale, {label}: `run --max-jobs {b5['max_jobs']}`, C={b5['c']}, latency 0",
                    ", ".join(f"{int(s):,} jobs: {f(rates[str(s)], 1)} jobs/s" for s in sizes),
                    f"{min(sizes):,}-job queue",
                    f"**{f(side['ratio'])}** ({max(sizes):,} ÷ {min(sizes):,})",
                    "≥ 0.9",
                )
            )
    elif b5 is not None:
        rows.append(("B5 scale", str(b5), "", "", ""))

    lines = [
        "| benchmark | this runner | baseline | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def details(results: dict[str, dict[str, Any] | str]) -> list[str]:
    """What each side did, so a ratio can be checked: calls, violations, files, CPU."""
    lines: list[str] = []
    b1 = results.get("b1_slots")
    if isinstance(b1, dict):
        lines.append("### B1")
        lines.append("")
        lines.append(
            "| N | C | side | process s | in-run s | CPU s | peak RSS MB | files | "
            "fake: calls | most in flight | limit violations |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for case in b1["cases"]:
            for label, side in (("runner", case["runner"]), ("SDK loop", case["sdk"])):
                p = side["process"]
                lines.append(
                    f"| {case['n']} | {case['c']} | {label} | {p['wall']:.2f} | "
                    f"{f(side['in_run_seconds'])} | {p['user'] + p['system']:.2f} | "
                    f"{p['max_rss_mb']:.0f} | {side['files']} | {calls(side['fake']['calls'])} | "
                    f"{side['fake']['max_in_flight']} | {side['fake']['limit_violations']} |"
                )
        lines.append("")
    b2 = results.get("b2_overhead")
    if isinstance(b2, dict):
        lines.append("### B2")
        lines.append("")
        lines.append(
            "| side | process s | in-run s | CPU ms/job | fake server CPU ms/job | "
            "peak RSS MB | files |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for label, side in (("runner", b2["runner"]), ("bare aiohttp loop", b2["bare"])):
            p = side["process"]
            lines.append(
                f"| {label} | {p['wall']:.2f} | {f(side['in_run_seconds'])} | "
                f"{side['cpu_ms_per_job']:.2f} | {side['fake_cpu_ms_per_job']:.2f} | "
                f"{p['max_rss_mb']:.0f} | {side['files']} |"
            )
        lines.append("")
    b3 = results.get("b3_submit")
    if isinstance(b3, dict):
        shell = b3.get("sqlite3")
        lines.append(
            f"B3: submit runs took {', '.join(f'{w:.1f}' for w in b3['runner_walls'])} s, "
            f"sqlite-utils runs {', '.join(f'{w:.1f}' for w in b3['sqlite_utils_walls'])} s"
            + (
                f"; the sqlite3 shell's `.import` (a bare copy in C) {shell['wall']:.1f} s, "
                f"peak RSS {shell['max_rss_mb']:.0f} MB."
                if shell
                else "."
            )
        )
        lines.append("")
    b4 = results.get("b4_status")
    if isinstance(b4, dict):
        walls = ", ".join(f"{w:.2f}" for w in b4["status"]["walls"])
        lines.append(
            f"B4: {b4['jobs_counted']:,} jobs counted; `status --json` runs took {walls} s "
            f"(median shown); peak RSS {b4['status']['max_rss_mb']:.0f} MB."
        )
        lines.append("")
    return lines


def measured_at(results: dict[str, dict[str, Any] | str]) -> str:
    """When the last benchmark finished (the time of this report when none ran)."""
    stamps = [r["finished"] for r in results.values() if isinstance(r, dict) and "finished" in r]
    return max(stamps) if stamps else time.strftime("%Y-%m-%d %H:%M:%S %z")


def render(results: dict[str, dict[str, Any] | str], quick: bool, seconds: float) -> str:
    m = common.machine()
    out = [
        "# Benchmarks" + (" (quick smoke run: sizes are not the real ones)" if quick else ""),
        "",
        f"- Date: {measured_at(results)}",
        f"- Python: {m['python']} ({m['implementation']})",
        f"- CPUs: {m['cpus']}",
        f"- Platform: {m['platform']}",
        f"- `make bench` took {seconds / 60:.1f} minutes",
        "",
        "Written by `bench/run_all.py` (`make bench`). Every side runs as its own process",
        "against the local fake ChangeClothes server, itself in another process on 127.0.0.1.",
        "Wall-clock numbers depend on the machine; the ratios, measured side by side in one",
        "run, are the point. Nothing here passes or fails on time.",
        "",
        "*In-run* is the first API call sent to the last result file written (the runner's",
        "from its queue database, the loops' timed around the loop); *whole process* adds the",
        "interpreter's start-up, imports and (for the runner) opening the database.",
        "",
        "## Ratios",
        "",
        *table(results),
        "",
        "- B1: L = 0.2 s per generation, result downloads trickled over 0.1 s. The SDK loop",
        "  holds its slot while it downloads, so it cannot beat L/(L + 0.1) ≈ 0.67.",
        "- B2: the bare loop writes files plainly; the runner also keeps the queue in SQLite",
        "  (one writer commits the transitions of many jobs together), fsyncs each file and",
        "  checks it decodes as an image (a JPEG at 1/8 scale) before renaming it into place,",
        "  in at most four threads. The bare loop is held",
        "  back by the fake server's single event loop (about 2 ms of its CPU per job), so its",
        "  rate moves from run to run; CPU per job is the steadier comparison.",
        "- B3: `sqlite-utils insert --csv` copies text into a bare table, committing as it",
        "  goes; `submit` also validates every row, computes its dedupe key, links identical",
        "  rows and maintains the queue's indexes, all in one transaction (nothing is queued",
        "  when a row is invalid). The sides take turns; the median run of each is shown.",
        "- B4: `status` reads a SQLite queue at the current schema with the standard library:",
        "  counts from the counts table (kept by triggers), no SQLAlchemy loaded.",
        "- B5: queues built with bulk SQL; each size runs twice",
        "  (smallest to largest and back) and the rates are over both runs, in-run.",
        "",
        "## Details",
        "",
        *details(results),
    ]
    if PROFILE_NOTES.exists():
        out += ["", PROFILE_NOTES.read_text().strip(), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="write the report from the JSON results of the last run, running nothing",
    )
    args = parser.parse_args()
    names = list(BENCHMARKS) if args.only is None else args.only.split(",")
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmarks: {', '.join(unknown)}")

    timing = common.RESULTS / f"run_all{'.quick' if args.quick else ''}.json"
    if args.render_only:
        results = load_results(names, args.quick)
        seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    else:
        started = time.perf_counter()
        results = run_benchmarks(names, args.quick)
        seconds = time.perf_counter() - started
        timing.write_text(json.dumps({"seconds": seconds}) + "\n")
    target = common.WORK / "results-quick.md" if args.quick else common.BENCH / "results.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(results, args.quick, seconds))
    print(target.read_text())
    print(f"wrote {target.relative_to(common.ROOT)}")
    if any(isinstance(r, str) for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
