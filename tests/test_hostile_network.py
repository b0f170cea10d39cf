"""A hostile API and result host cannot crash the client or the download, run them out of
memory or disk, or keep them busy without end: every case ends in a result or a classified
error, in bounded time and memory, with no file over the cap on disk.

The client runs in a process of its own (tests/hostile_probe.py) so that its peak memory
can be measured; the server is tests/hostile_server.py, run through its command line.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.api import errors
from runner.api.request import MAX_RESULT_BYTES
from runner.scheduler.files import TEMP_SUFFIX

ROOT = Path(__file__).resolve().parent.parent
RSS_LIMIT_MB = 300
SMALL_CAP = 2 * 1024 * 1024  # a download cap that fills quickly

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile_server", "--drip-interval", "0.3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the hostile server did not start"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Probe:
    outcome: dict[str, Any]
    peak_rss_mb: float
    files: dict[str, int]  # name -> size, everything left in the folder


def probe(tmp_path: Path, *args: str) -> Probe:
    folder = tmp_path / "out"
    folder.mkdir()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile_probe", args[0], args[1], str(folder), *args[2:]],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
        # wait4 gives this child's own resource usage (the same figures as
        # getrusage(RUSAGE_CHILDREN), but not mixed with other children of the test run).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"the probe crashed:\n{err.read_text()[-3000:]}"
    assert "Traceback" not in err.read_text()
    files = {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    return Probe(json.loads(out.read_text()), usage.ru_maxrss / 1024, files)


def assert_bounded(result: Probe, cap: int) -> None:
    assert result.peak_rss_mb < RSS_LIMIT_MB, f"peak RSS {result.peak_rss_mb:.0f} MB"
    assert all(size <= cap for size in result.files.values()), result.files
    assert not [name for name in result.files if name.endswith(TEMP_SUFFIX)], result.files


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# (model-url query, RspImgType, exception type, code)
API_CASES = [
    ("api=endless", "url", "TransientError", errors.RESPONSE_TOO_LARGE),
    ("api=endless", "base64", "TransientError", errors.RESPONSE_TOO_LARGE),
    ("api=huge-request-id", "url", "TransientError", errors.RESPONSE_TOO_LARGE),
    ("api=huge-request-id", "base64", "TransientError", errors.RESPONSE_TOO_LARGE),
    ("api=huge-request-id&size=600", "url", "TransientError", errors.BAD_REQUEST_ID),
    ("api=drip", "url", "TransientError", errors.TIMEOUT),
    ("api=stall", "url", "TransientError", errors.TIMEOUT),
    ("api=html-502", "url", "OutageError", errors.NOT_THE_API),
    ("api=long-url", "url", "TransientError", errors.BAD_RESULT_IMAGE),
    ("api=not-url", "url", "TransientError", errors.BAD_RESULT_IMAGE),
    ("api=ok-url", "base64", "TransientError", errors.BAD_RESULT_IMAGE),
    ("api=bomb-base64", "base64", "NotAnImage", errors.RESULT_NOT_AN_IMAGE),
]


@pytest.mark.parametrize(("query", "rsp_img_type", "kind", "code"), API_CASES)
def test_hostile_api_answer_is_classified_and_bounded(
    server: str, tmp_path: Path, query: str, rsp_img_type: str, kind: str, code: str
) -> None:
    result = probe(
        tmp_path,
        "api",
        server,
        f"--model-url=http://127.0.0.1/m.jpg?{query}",
        f"--rsp-img-type={rsp_img_type}",
    )
    assert (result.outcome["type"], result.outcome["code"]) == (kind, code)
    assert_bounded(result, MAX_RESULT_BYTES)
    assert not result.files, "nothing is written from a bad answer"


def test_html_page_and_unreachable_endpoint_are_outages(server: str, tmp_path: Path) -> None:
    result = probe(tmp_path, "api", closed_port_url())
    assert result.outcome["type"] == "OutageError"
    assert result.outcome["code"] == errors.UNREACHABLE
    assert result.outcome["error_class"] == errors.ErrorClass.OUTAGE


@pytest.mark.parametrize("query", ["api=ok-url", "api=ok-base64"])
def test_good_answers_still_pass_the_checks(server: str, tmp_path: Path, query: str) -> None:
    mode = "base64" if "base64" in query else "url"
    result = probe(
        tmp_path,
        "api",
        server,
        f"--model-url=http://127.0.0.1/m.jpg?{query}",
        f"--rsp-img-type={mode}",
    )
    assert result.outcome["outcome"] == "result"
    assert_bounded(result, MAX_RESULT_BYTES)


# (download kind, URL lifetime left in seconds, exception type, code, HTTP status)
DOWNLOAD_CASES = [
    ("endless", 3600, "ResultTooLarge", errors.RESULT_TOO_LARGE, None),
    ("huge-declared", 3600, "ResultTooLarge", errors.RESULT_TOO_LARGE, None),
    ("drip", 3600, "DownloadFailed", errors.DOWNLOAD_TIMEOUT, None),
    ("not-image", 3600, "NotAnImage", errors.RESULT_NOT_AN_IMAGE, None),
    ("truncated", 3600, "DownloadFailed", errors.DOWNLOAD_TRUNCATED, None),
    ("truncated-image", 3600, "NotAnImage", errors.RESULT_NOT_AN_IMAGE, None),
    ("redirect-loop", 3600, "DownloadFailed", errors.DOWNLOAD_REDIRECTS, 302),
    ("403", 3600, "DownloadFailed", errors.DOWNLOAD_HTTP_STATUS, 403),
    ("404", 3600, "DownloadFailed", errors.DOWNLOAD_HTTP_STATUS, 404),
    ("403", -1, "UrlExpired", errors.URL_EXPIRED, 403),
    ("410", -1, "UrlExpired", errors.URL_EXPIRED, 410),
    ("500", -1, "DownloadFailed", errors.DOWNLOAD_HTTP_STATUS, 500),
    ("bomb", 3600, "NotAnImage", errors.RESULT_NOT_AN_IMAGE, None),
    ("big-pixels", 3600, "NotAnImage", errors.RESULT_NOT_AN_IMAGE, None),
]


@pytest.mark.parametrize(("kind", "expires_in", "exc_type", "code", "status"), DOWNLOAD_CASES)
def test_hostile_download_is_classified_and_bounded(
    server: str,
    tmp_path: Path,
    kind: str,
    expires_in: int,
    exc_type: str,
    code: str,
    status: int | None,
) -> None:
    result = probe(
        tmp_path,
        "download",
        f"{server}/dl/{kind}",
        f"--max-result-bytes={SMALL_CAP}",
        f"--expires-in={expires_in}",
    )
    assert result.outcome == {
        "outcome": "error",
        "type": exc_type,
        "code": code,
        "error_class": "",
        "status": status,
    }
    assert_bounded(result, SMALL_CAP)
    assert not result.files, "a failed download leaves nothing behind"


def test_good_download_is_kept(server: str, tmp_path: Path) -> None:
    result = probe(tmp_path, "download", f"{server}/dl/ok", f"--max-result-bytes={SMALL_CAP}")
    assert result.outcome["outcome"] == "result"
    assert list(result.files) == ["result.png"]
    assert_bounded(result, SMALL_CAP)


def test_endless_download_at_the_default_cap_stops_there(server: str, tmp_path: Path) -> None:
    result = probe(tmp_path, "download", f"{server}/dl/endless", "--total=60")
    assert result.outcome["type"] == "ResultTooLarge"
    assert_bounded(result, MAX_RESULT_BYTES)
    assert not result.files
