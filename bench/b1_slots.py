"""B1 slot utilisation: how close the runner comes to the account's limit, against the SDK loop.

The fake server takes L = 0.2 s per generation and trickles each result download over 0.1 s.
N jobs with C slots cannot finish before N*L/C. For the runner (`changeclothes run` as its own
process) and for a loop over the official SDK (call, download, write, next; C threads when
C > 1), each against a fresh fake server, we report that ideal over the measured makespan:

- process: the whole process, from fork to exit (start-up and database opening included);
- in-run: the first API call sent to the last file written (runner: from its database;
  SDK loop: timed around the loop).

    python bench/b1_slots.py [--quick] [--profile]
"""

from __future__ import annotations

from typing import Any

import common

LATENCY = 0.2
DOWNLOAD_DELAY = 0.1
FULL_CASES = ((100, 1), (400, 4))
QUICK_CASES = ((10, 1), (40, 4))


def fake(concurrency: int) -> common.FakeServerProcess:
    return common.FakeServerProcess(
        concurrency=concurrency, latency=LATENCY, download_delay=DOWNLOAD_DELAY, ttl=600, seed=1
    )


def run_runner(n: int, c: int, profile: bool) -> dict[str, Any]:
    work = common.fresh_dir(common.WORK / "b1" / f"runner-{n}-{c}")
    manifest = common.write_fake_manifest(work / "jobs.csv", n)
    db, out = work / "queue.db", work / "results"
    with fake(c) as server:
        common.submit(manifest, db, server.images_url)
        argv = common.runner_cli(
            "run",
            "--endpoint",
            server.url,
            "--concurrency",
            str(c),
            "--db",
            str(db),
            "--out",
            str(out),
            profile=common.profile_path(f"b1-run-{n}-{c}", profile),
        )
        fake_cpu = server.cpu_seconds()
        child = common.run_child(argv).check()
        fake_cpu = server.cpu_seconds() - fake_cpu
        seen = server.summary()
    window = common.run_window(db)
    files = sum(1 for p in out.rglob("*.jpg"))
    return {
        "process": child.summary(),
        "in_run_seconds": window["seconds"],
        "states": window["states"],
        "files": files,
        "fake": {**seen, "cpu_seconds": fake_cpu},
    }


def run_sdk_loop(n: int, c: int) -> dict[str, Any]:
    work = common.fresh_dir(common.WORK / "b1" / f"sdk-{n}-{c}")
    manifest = common.write_fake_manifest(work / "jobs.csv", n)
    with fake(c) as server:
        endpoint = f"{common.HOST}:{server.port}"
        return common.run_baseline_loop(
            server, "loop_sdk.py", endpoint, manifest, work / "results", ["--threads", str(c)]
        )


def measure(cases: tuple[tuple[int, int], ...], profile: bool) -> list[dict[str, Any]]:
    results = []
    for n, c in cases:
        ideal = n * LATENCY / c
        print(f"B1 N={n} C={c}: ideal {ideal:.1f} s")
        with common.step("runner"):
            runner = run_runner(n, c, profile)
        with common.step("SDK loop"):
            sdk = run_sdk_loop(n, c)
        case = {
            "n": n,
            "c": c,
            "latency": LATENCY,
            "download_delay": DOWNLOAD_DELAY,
            "ideal_seconds": ideal,
            "runner": runner,
            "sdk": sdk,
            "runner_utilisation": ideal / runner["process"]["wall"],
            "runner_utilisation_in_run": common.ratio(ideal, runner["in_run_seconds"]),
            "sdk_utilisation": ideal / sdk["process"]["wall"],
            "sdk_utilisation_in_run": common.ratio(ideal, sdk["in_run_seconds"]),
            "speedup": sdk["process"]["wall"] / runner["process"]["wall"],
        }
        print(
            f"  utilisation: runner {case['runner_utilisation']:.3f} "
            f"(in-run {common.fmt(case['runner_utilisation_in_run'], 3)}), "
            f"SDK loop {case['sdk_utilisation']:.3f} "
            f"(in-run {common.fmt(case['sdk_utilisation_in_run'], 3)}); "
            f"runner {case['speedup']:.2f}x faster"
        )
        results.append(case)
    return results


def main() -> None:
    args = common.parse_args(__doc__ or "")
    cases = QUICK_CASES if args.quick else FULL_CASES
    common.write_result("b1_slots", args, {"cases": measure(cases, args.profile)})


if __name__ == "__main__":
    main()
