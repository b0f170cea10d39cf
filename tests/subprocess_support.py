"""The runner as a real subprocess, and waits on the events it causes (a call arriving at
the fake, a result recorded in the queue): kills and signals follow those events, never a
guess at how long a loaded machine takes."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from runner.fake import FakeServer

# Generous: only a machine far beyond busy takes this long to reach the next event.
EVENT_TIMEOUT = 90.0


def runner_command(db: str, out: Path, server: FakeServer, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runner",
        "run",
        "--db",
        db,
        "--out",
        str(out),
        "--endpoint",
        server.url,
        "--concurrency",
        str(concurrency),
        "--retry-delay",
        "0.05",
        "--backoff-base",
        "0.05",
        "--backoff-cap",
        "0.3",
    ]


def runner_env(server: FakeServer) -> dict[str, str]:
    env = dict(os.environ)
    env["TENCENTCLOUD_SECRET_ID"] = server.credentials.secret_id
    env["TENCENTCLOUD_SECRET_KEY"] = server.credentials.secret_key
    env.pop("TENCENTCLOUD_SESSION_TOKEN", None)
    return env


def calls_arrived(server: FakeServer) -> int:
    """API calls the fake has received so far: answered ones plus those still in its hands."""
    stats = server.stats()
    return sum(stats["calls"].values()) + int(stats["in_flight"])


def jobs_done(db: str) -> int:
    """Results recorded in a SQLite queue, read the way a user's SQL would (WAL: a reader never
    blocks the runner's writes)."""
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()
    return int(count)


async def wait_until(
    condition: Callable[[], bool], what: str, process: Process | None = None
) -> None:
    """Poll `condition` until true; fail with `what` after EVENT_TIMEOUT, or at once if
    `process` ended first (the event can no longer come)."""
    with anyio.move_on_after(EVENT_TIMEOUT) as scope:
        while not condition():
            if process is not None and process.returncode is not None:
                raise AssertionError(f"the runner exited ({process.returncode}) before {what}")
            await anyio.sleep(0.02)
    if scope.cancelled_caught:
        raise AssertionError(f"no {what} within {EVENT_TIMEOUT:.0f} s")


async def read_until(stream: ByteReceiveStream, text: str, what: str) -> None:
    """Read a subprocess's output until `text` appears; fail with `what` at its end or after
    EVENT_TIMEOUT."""
    seen = b""
    with anyio.move_on_after(EVENT_TIMEOUT):
        async for chunk in stream:
            seen += chunk
            if text.encode() in seen:
                return
    raise AssertionError(f"no {what} ({text!r}) in: {seen.decode(errors='replace')[-2000:]}")
