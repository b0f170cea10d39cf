"""An endpoint that does not answer is an outage, not a failure of the jobs: the run pauses,
probes, and goes on when the endpoint comes back; after --outage-limit it halts (exit 3) with
the queue intact."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from runner.fake import serve_fake
from runner.fake.config import FakeCredentials
from tests.cli_run import FAST, RunProcess, run_cli, run_env
from tests.run_support import all_jobs, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CREDS = FakeCredentials("AKIDoutage0000000001", "outage-secret-key")
JOBS = 6


def reserved_port() -> int:
    """A port nothing listens on (yet): the kernel just handed it out and it is closed again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_args(db: str, out: Path, endpoint: str, *extra: str) -> list[str]:
    return [
        "run",
        f"--db={db}",
        f"--out={out}",
        f"--endpoint={endpoint}",
        "--concurrency=2",
        "--connect-timeout=2",
        *FAST,
        *extra,
    ]


async def test_endpoint_that_comes_up_late_fails_no_job(tmp_path: Path) -> None:
    port = reserved_port()
    endpoint = f"http://127.0.0.1:{port}"
    db = str(tmp_path / "queue.db")
    await submit(db, write_manifest(tmp_path / "m.csv", JOBS), endpoint + "/")
    env = run_env(tmp_path, CREDS.secret_id, CREDS.secret_key)
    run = RunProcess(run_args(db, tmp_path / "out", endpoint), env, tmp_path)
    try:
        # The server comes up once the run has met the outage, not after a guessed delay.
        await anyio.to_thread.run_sync(run.wait_for_line, "does not answer")
        async with serve_fake(port=port, credentials=CREDS, seed=5) as server:
            code = await anyio.to_thread.run_sync(run.wait, 90)
            paid = server.stats()["calls"].get("OK", 0)
    finally:
        run.kill()
    assert code == 0, run.stderr[-3000:]
    run.assert_no_traceback()
    assert "answers again" in run.stderr
    jobs = await all_jobs(db)
    assert [j["state"] for j in jobs] == ["done"] * JOBS
    assert [j["attempts"] for j in jobs] == [0] * JOBS, "no attempt is charged for an outage"
    assert paid == JOBS


async def test_outage_longer_than_the_limit_halts_with_the_queue_intact(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{reserved_port()}"
    db = str(tmp_path / "queue.db")
    await submit(db, write_manifest(tmp_path / "m.csv", JOBS), endpoint + "/")
    env = run_env(tmp_path, CREDS.secret_id, CREDS.secret_key)
    args = run_args(db, tmp_path / "out", endpoint, "--outage-limit=5s")
    run = await anyio.to_thread.run_sync(lambda: run_cli(args, env, tmp_path, timeout=90))
    assert run.returncode == 3, run.stderr[-3000:]
    run.assert_no_traceback()
    assert "ClientError.Unreachable" in run.stdout
    jobs = await all_jobs(db)
    assert [(j["state"], j["attempts"]) for j in jobs] == [("queued", 0)] * JOBS
