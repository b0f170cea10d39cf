"""A whole `changeclothes run` against a hostile API and result host: every kind of bad
answer at once, in one run. The run ends, within its memory, leaving no file over the cap and
no traceback; each job ends in the state and code its case calls for, and no job is paid for
more than 1 + --max-regenerations times.

tests/test_hostile_network.py checks each case against the client or the download alone;
this checks what a user sees of them.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import anyio
import pytest

from runner.api import errors
from runner.scheduler.files import TEMP_SUFFIX
from tests.cli_run import FAST, run_cli, run_env
from tests.hostile_server import hostile_server
from tests.run_support import all_jobs, submit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

RSS_LIMIT_MB = 300
CAP = 1024 * 1024  # --max-result-bytes: the endless download fills it quickly
MAX_REGENERATIONS = 1

LOST = errors.RESULT_LOST
# id -> (ModelUrl query, rsp_img_type, final state, code, what the message names)
CASES: dict[str, tuple[str, str, str, str | None, str | None]] = {
    "good-url": ("api=ok-url&download=ok", "url", "done", None, None),
    "good-base64": ("api=ok-base64", "base64", "done", None, None),
    "api-endless": ("api=endless", "url", "failed", errors.RESPONSE_TOO_LARGE, None),
    "api-endless-base64": ("api=endless", "base64", "failed", errors.RESPONSE_TOO_LARGE, None),
    "api-2gb-request-id": ("api=huge-request-id", "url", "failed", errors.RESPONSE_TOO_LARGE, None),
    "api-drip": ("api=drip", "url", "failed", errors.TIMEOUT, None),
    "api-slowloris": ("api=stall", "url", "failed", errors.TIMEOUT, None),
    "dl-endless": ("download=endless", "url", "failed", LOST, errors.RESULT_TOO_LARGE),
    "dl-not-image": ("download=not-image", "url", "failed", LOST, errors.RESULT_NOT_AN_IMAGE),
    "dl-truncated": ("download=truncated", "url", "failed", LOST, errors.DOWNLOAD_TRUNCATED),
    "dl-redirects": ("download=redirect-loop", "url", "failed", LOST, errors.DOWNLOAD_REDIRECTS),
    "dl-403": ("download=403", "url", "failed", LOST, errors.DOWNLOAD_HTTP_STATUS),
    "dl-500": ("download=500", "url", "failed", LOST, errors.DOWNLOAD_HTTP_STATUS),
    "dl-bomb": ("download=bomb", "url", "failed", LOST, errors.RESULT_NOT_AN_IMAGE),
    "base64-bomb": ("api=bomb-base64", "base64", "failed", LOST, errors.RESULT_NOT_AN_IMAGE),
}


def model_url(case: str) -> str:
    query = CASES[case][0]
    if "api=" not in query:
        query = f"api=ok-url&{query}"
    return f"http://127.0.0.1/m.jpg?{query}&case={case}"


def write_cases(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type", "rsp_img_type"])
        for case, (_, rsp_img_type, *_) in CASES.items():
            writer.writerow(
                [case, model_url(case), "http://127.0.0.1/c.jpg", "Upper-body", rsp_img_type]
            )
    return path


async def test_every_hostile_answer_in_one_run_is_bounded_and_classified(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    jobs = len(CASES)
    async with hostile_server(drip_interval=0.3) as server:
        await submit(db, write_cases(tmp_path / "cases.csv"), "http://127.0.0.1/")
        args = [
            "run",
            f"--db={db}",
            f"--out={out}",
            f"--endpoint={server.url}",
            f"--concurrency={jobs}",
            f"--download-workers={jobs}",
            "--max-attempts=1",
            f"--max-regenerations={MAX_REGENERATIONS}",
            f"--max-result-bytes={CAP}",
            "--timeout=1",
            "--connect-timeout=1",
            *FAST,
        ]
        env = run_env(tmp_path, "AKIDhostile", "hostile-secret-key")
        run = await anyio.to_thread.run_sync(lambda: run_cli(args, env, tmp_path, timeout=180))
        paid = Counter({url: n for url, n in server.paid.items()})

    assert run.returncode == 1, run.stderr[-3000:]  # some jobs failed, as they should
    run.assert_no_traceback()
    assert run.peak_rss_mb < RSS_LIMIT_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"

    files = {
        p.name: p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and not p.match("run-*.json")  # the run's summary
    }
    assert all(size <= CAP for size in files.values()), files
    assert not [name for name in files if name.endswith(TEMP_SUFFIX)], files
    assert sorted(files) == ["good-base64.png", "good-url.png"], "only results that are images"

    by_id = {job["external_id"]: job for job in await all_jobs(db)}
    for case, (_, _, state, code, named) in CASES.items():
        job = by_id[case]
        assert (job["state"], job["last_error_code"]) == (state, code), case
        if named is not None:
            assert named in job["last_error_message"], (case, job["last_error_message"])

    assert sum(paid.values()) <= jobs * (1 + MAX_REGENERATIONS), paid
    for case, (_, _, _, code, _) in CASES.items():
        # A lost result is generated again exactly --max-regenerations times; nothing else
        # is paid for twice.
        expected = 1 + MAX_REGENERATIONS if code == LOST else 1
        if case in ("api-drip", "api-slowloris"):
            expected = 0  # no answer came: nothing to pay
        assert paid[model_url(case)] == expected, (case, paid)
