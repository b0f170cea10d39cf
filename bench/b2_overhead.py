"""B2 overhead: jobs per second of the whole runner against a bare aiohttp loop.

Latency 0, C = 32, N = 5,000 distinct jobs. The runner (`changeclothes run` as its own
process: queue, calls, downloads, result files) and a bare loop (loop_aiohttp.py: the same
signed calls and downloads, files written plainly, no database) each run against a fresh
fake server in its own process. Reported: jobs per second over the whole process and over
the run itself, CPU seconds per job of each side, and the fake server's CPU (it shares the
machine, so when it is saturated it, not the client, sets the pace).

    python bench/b2_overhead.py [--quick] [--profile]
"""

from __future__ import annotations

from typing import Any

import common

CONCURRENCY = 32
FULL_N = 5000
QUICK_N = 300


def fake() -> common.FakeServerProcess:
    return common.FakeServerProcess(concurrency=CONCURRENCY, latency=0.0, ttl=600, seed=1)


def run_runner(n: int, profile: bool) -> dict[str, Any]:
    work = common.fresh_dir(common.WORK / "b2" / f"runner-{n}")
    manifest = common.write_fake_manifest(work / "jobs.csv", n)
    db, out = work / "queue.db", work / "results"
    with fake() as server:
        common.submit(manifest, db, server.images_url)
        argv = common.runner_cli(
            "run",
            "--endpoint",
            server.url,
            "--concurrency",
            str(CONCURRENCY),
            "--db",
            str(db),
            "--out",
            str(out),
            profile=common.profile_path(f"b2-run-{n}", profile),
        )
        fake_cpu = server.cpu_seconds()
        child = common.run_child(argv).check()
        fake_cpu = server.cpu_seconds() - fake_cpu
        seen = server.summary()
    window = common.run_window(db)
    done = window["states"].get("done", 0)
    return {
        "process": child.summary(),
        "in_run_seconds": window["seconds"],
        "states": window["states"],
        "done": done,
        "files": sum(1 for _ in out.rglob("*.jpg")),
        "fake": {**seen, "cpu_seconds": fake_cpu},
    }


def run_bare(n: int) -> dict[str, Any]:
    work = common.fresh_dir(common.WORK / "b2" / f"bare-{n}")
    manifest = common.write_fake_manifest(work / "jobs.csv", n)
    with fake() as server:
        result = common.run_baseline_loop(
            server,
            "loop_aiohttp.py",
            server.url,
            manifest,
            work / "results",
            ["--concurrency", str(CONCURRENCY)],
        )
    return {**result, "done": result["files"]}


def rates(side: dict[str, Any], n: int) -> dict[str, Any]:
    wall = side["process"]["wall"]
    cpu = side["process"]["user"] + side["process"]["system"]
    return {
        "jobs_per_s": n / wall,
        "jobs_per_s_in_run": common.ratio(n, side["in_run_seconds"]),
        "cpu_ms_per_job": 1000 * cpu / n,
        "fake_cpu_ms_per_job": 1000 * side["fake"]["cpu_seconds"] / n,
    }


def measure(n: int, profile: bool) -> dict[str, Any]:
    print(f"B2 N={n} C={CONCURRENCY} latency 0")
    with common.step("runner"):
        runner = run_runner(n, profile)
    with common.step("bare aiohttp loop"):
        bare = run_bare(n)
    runner.update(rates(runner, n))
    bare.update(rates(bare, n))
    result = {
        "n": n,
        "c": CONCURRENCY,
        "runner": runner,
        "bare": bare,
        "throughput_ratio": runner["jobs_per_s"] / bare["jobs_per_s"],
        "throughput_ratio_in_run": common.ratio(
            runner["jobs_per_s_in_run"], bare["jobs_per_s_in_run"]
        ),
        "cpu_ratio": runner["cpu_ms_per_job"] / bare["cpu_ms_per_job"],
    }
    print(
        f"  runner {runner['jobs_per_s']:.0f} jobs/s "
        f"(in-run {common.fmt(runner['jobs_per_s_in_run'], 0)}, "
        f"{runner['cpu_ms_per_job']:.1f} ms CPU/job); "
        f"bare loop {bare['jobs_per_s']:.0f} jobs/s "
        f"(in-run {common.fmt(bare['jobs_per_s_in_run'], 0)}, "
        f"{bare['cpu_ms_per_job']:.1f} ms CPU/job); "
        f"ratio {result['throughput_ratio']:.2f} "
        f"(in-run {common.fmt(result['throughput_ratio_in_run'])})"
    )
    return result


def main() -> None:
    args = common.parse_args(__doc__ or "")
    result = measure(QUICK_N if args.quick else FULL_N, args.profile)
    common.write_result("b2_overhead", args, result)


if __name__ == "__main__":
    main()
