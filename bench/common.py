"""Shared parts of the benchmarks: the fake server in its own process, manifests, timed children.

Every benchmark script is runnable alone (`python bench/b1_slots.py [--quick]`). Each writes
its measurements as JSON under `bench/work/results/` for `run_all.py`, which turns them into
`bench/results.md`. Nothing here asserts on time: the scripts measure and print ratios.

No traffic leaves 127.0.0.1: the fake server listens there, and the runner and the hand-written
loops are pointed at it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = WORK / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"

# The public demo pair the fake server accepts (runner.fake.DEMO_SECRET_ID / _KEY). Spelled out
# so that importing this module does not import the runner into a hand-written loop's process.
DEMO_SECRET_ID = "AKIDchangeclothesFAKEdemo00000000"
DEMO_SECRET_KEY = "changeclothes-fake-demo-key-0000"

CLOTHES_TYPES = ("Upper-body", "Lower-body", "Dress")
SAMPLE_MODELS = tuple(f"model-{i:02d}.jpg" for i in range(1, 7))
SAMPLE_CLOTHES = tuple(f"clothes-{i:02d}.jpg" for i in range(1, 13))


# -- environment --------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: demo credentials, no proxy for loopback, no stray
    CHANGECLOTHES_* settings or settings file from the user's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGECLOTHES_")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    env.update(
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=DEMO_SECRET_KEY,
        NO_PROXY=HOST,
        no_proxy=HOST,
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("TENCENTCLOUD_SESSION_TOKEN", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path` (a previous run's files removed)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)
    path.mkdir(parents=True)
    return path


# -- timed children -----------------------------------------------------------------------


@dataclass
class ChildRun:
    """One child process, timed: wall seconds, its own CPU and peak RSS (from wait4)."""

    argv: list[str]
    returncode: int
    wall: float
    user: float
    system: float
    max_rss_mb: float
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def check(self, ok: Sequence[int] = (0,)) -> ChildRun:
        if self.returncode not in ok:
            raise RuntimeError(
                f"{' '.join(self.argv)} exited {self.returncode}\n"
                f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
            )
        return self

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("stdout")
        data.pop("stderr")
        data["argv"] = " ".join(self.argv)
        return data


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_to: Path | None = None,
) -> ChildRun:
    """Run `argv` to the end and measure it: wall time from fork to exit, and the child's
    own CPU time and peak resident memory as `wait4` reports them for that one process."""
    log_dir = log_to or WORK / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(argv[0]).name}-{os.getpid()}-{time.monotonic_ns()}"
    out_path, err_path = log_dir / f"{stem}.out", log_dir / f"{stem}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env if env is not None else child_env(),
            cwd=cwd,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    return ChildRun(
        argv=list(argv),
        returncode=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        stdout=stdout,
        stderr=stderr,
    )


def runner_cli(*args: str, profile: Path | None = None) -> list[str]:
    """`python -m runner ARGS`, or the same under pyinstrument saving a session to `profile`
    (render it with `python -m pyinstrument --load FILE [-p flat=true]`)."""
    if profile is None:
        return [PYTHON, "-m", "runner", *args]
    return [
        PYTHON,
        "-m",
        "pyinstrument",
        "--renderer",
        "pyisession",
        "--outfile",
        str(profile),
        "-m",
        "runner",
        *args,
    ]


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- the fake server in its own process ---------------------------------------------------


class FakeServerProcess:
    """`python -m runner fake-server ...` on a free port of 127.0.0.1, until `stop()`.

    It runs in its own process so that its CPU does not share the measured event loop.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        latency: float = 0.0,
        download_delay: float = 0.0,
        ttl: float = 600.0,
        seed: int = 1,
        log: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.images_url = f"{self.url}/images/"
        argv = runner_cli(
            "fake-server",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--latency",
            str(latency),
            "--download-delay",
            str(download_delay),
            "--concurrency",
            str(concurrency),
            "--ttl",
            str(ttl),
            "--seed",
            str(seed),
        )
        log_path = log or WORK / "logs" / f"fake-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the fake server exited with {self.proc.returncode}")
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the fake server did not answer on {self.url} in {timeout} s")

    def stats(self) -> dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}/_admin/stats", timeout=30) as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def summary(self) -> dict[str, Any]:
        """The counters of the stats document (without its per-result lists)."""
        stats = self.stats()
        return {
            "calls": stats["calls"],
            "max_in_flight": stats["max_in_flight"],
            "limit_violations": stats["limit_violations"],
            "downloads": len(stats["downloads"]),
            "bytes_served": stats["bytes_served"],
            "expired_downloads": stats["expired_downloads"],
        }

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        if self.proc.returncode in (0, -signal.SIGTERM):
            Path(self._log.name).unlink(missing_ok=True)  # kept only when the server failed

    def __enter__(self) -> FakeServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- manifests ----------------------------------------------------------------------------


def write_fake_manifest(path: Path, count: int) -> Path:
    """`count` distinct jobs over the fake's sample images, as relative paths (submit them
    with `--base-url <fake>/images/`). A `?row=N` query keeps each row a distinct job for
    the runner while the fake's `/images/` route ignores it, so its render cache hits."""
    models = itertools.cycle(SAMPLE_MODELS)
    clothes = itertools.cycle(SAMPLE_CLOTHES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for n in range(count):
            writer.writerow(
                [f"job-{n:06d}", f"{next(models)}?row={n}", next(clothes), CLOTHES_TYPES[n % 3]]
            )
    return path


def run_baseline_loop(
    server: FakeServerProcess,
    script: str,
    endpoint: str,
    manifest: Path,
    out: Path,
    extra: Sequence[str],
) -> dict[str, Any]:
    """Run one of the baseline loops (`loop_sdk.py`, `loop_aiohttp.py`) against `server`;
    each prints a JSON report (seconds, written, error_count) as its last line."""
    argv = [
        PYTHON,
        str(BENCH / script),
        "--endpoint",
        endpoint,
        "--manifest",
        str(manifest),
        "--base-url",
        server.images_url,
        "--out",
        str(out),
        *extra,
    ]
    fake_cpu = server.cpu_seconds()
    child = run_child(argv).check()
    fake_cpu = server.cpu_seconds() - fake_cpu
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "process": child.summary(),
        "in_run_seconds": report["seconds"],
        "files": report["written"],
        "errors": report["error_count"],
        "fake": {**server.summary(), "cpu_seconds": fake_cpu},
    }


def read_manifest(path: Path, base_url: str) -> list[dict[str, str]]:
    """The rows of a manifest written by `write_fake_manifest`, with absolute URLs."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["model_url"] = base_url + row["model_url"]
        row["clothes_url"] = base_url + row["clothes_url"]
    return rows


def submit(manifest: Path, db: Path, base_url: str | None = None) -> ChildRun:
    args = ["submit", str(manifest), "--db", str(db)]
    if base_url is not None:
        args += ["--base-url", base_url]
    return run_child(runner_cli(*args)).check()


# -- reading a finished run from its database --------------------------------------------


def run_window(db: Path) -> dict[str, Any]:
    """From the queue database: seconds from the first API call's send to the last job done.

    A call's send time is its event's time minus its latency. Also the jobs per state.
    """
    import sqlite3
    from datetime import datetime, timedelta

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text)

    with contextlib.closing(sqlite3.connect(db)) as conn:
        calls = conn.execute("SELECT at, latency_ms FROM events WHERE kind = 'call'").fetchall()
        last = conn.execute("SELECT max(finished_at) FROM jobs WHERE state = 'done'").fetchone()
        states = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    seconds = None
    if calls and last and last[0]:
        first_sent = min(parse(at) - timedelta(milliseconds=ms or 0) for at, ms in calls)
        seconds = (parse(last[0]) - first_sent).total_seconds()
    return {"seconds": seconds, "calls": len(calls), "states": states}


# -- results ------------------------------------------------------------------------------


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small smoke-sized run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the runner's CLI under pyinstrument; text profiles go to bench/work/profiles/",
    )
    parser.add_argument("--output", type=Path, default=None, help="where to write the JSON result")
    return parser.parse_args()


def profile_path(name: str, enabled: bool) -> Path | None:
    if not enabled:
        return None
    folder = WORK / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pyisession"


def write_result(name: str, args: argparse.Namespace, result: dict[str, Any]) -> Path:
    """Write the JSON result where run_all.py looks for it, and say where."""
    path = args.output or RESULTS / f"{name}{'.quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "quick": bool(args.quick),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    print(f"  {label} ...", flush=True)
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


# -- the large manifest of B3 and B4 -------------------------------------------------------

BIG_ROWS = 1_000_000
QUICK_BIG_ROWS = 20_000


def big_manifest(rows: int) -> Path:
    """A `rows`-row CSV of distinct jobs with realistic absolute URLs, made once and cached
    under bench/work (the submit never fetches them, so no host is contacted)."""
    path = WORK / f"manifest-{rows}.csv"
    done = path.with_suffix(".csv.ok")
    if path.exists() and done.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".csv.part")
    with temp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for n in range(rows):
            writer.writerow(
                [
                    f"sku-{n:07d}",
                    f"https://images.example.com/models/model-{n % 2000:04d}.jpg",
                    f"https://images.example.com/garments/sku-{n:07d}.jpg",
                    CLOTHES_TYPES[n % 3],
                ]
            )
    temp.replace(path)
    done.touch()
    return path


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


# -- big queues built with bulk SQL (B4, B5): submit's speed is B3's business ----------------

BULK_JOB_COLUMNS = (
    "batch_id, external_id, model_url, clothes_url, clothes_type, options, dedupe_key, "
    "state, attempts, regenerations, created_at, updated_at"
)


def bulk_sqlite_jobs(path: Path, size: int, images_url: str, done_share: float) -> None:
    """Add one batch of `size` jobs over the fake's sample images to the SQLite queue at
    `path` (its schema made by `changeclothes db upgrade`), the first `done_share` of them
    done, in one INSERT ... SELECT; then ANALYZE, as `PRAGMA optimize` would."""
    done = int(size * done_share)
    stamp = "2026-12-01 00:00:00.000000"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        batch = conn.execute(
            "INSERT INTO batches (name, source_path, content_sha256, submitted_at, options) "
            "VALUES (?, 'bulk', ?, ?, '{}')",
            (f"bulk-{size}", "0" * 64, stamp),
        ).lastrowid
        conn.execute(
            f"WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < {size - 1})"
            f" INSERT INTO jobs ({BULK_JOB_COLUMNS}) SELECT {batch}, printf('job-%07d', i),"
            f" '{images_url}model-0' || (i % 6 + 1) || '.jpg?row=' || i,"
            f" '{images_url}clothes-' || printf('%02d', i % 12 + 1) || '.jpg', 'Dress', '{{}}',"
            f" printf('%064d', i), CASE WHEN i < {done} THEN 'done' ELSE 'queued' END, 0, 0,"
            f" '{stamp}', '{stamp}' FROM r"
        )
        conn.commit()
        conn.execute("ANALYZE")
