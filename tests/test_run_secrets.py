"""The secret key and the session token appear nowhere a run leaves things, even at DEBUG and
even when things go wrong: not on stdout or stderr, not in the queue database or its WAL, not
in the paid journal a killed run leaves, not in the HTML report or an export.

(A malformed credentials file at DEBUG: tests/test_credentials_chain.py; its run ends at
exit 2 before anything is written, so its output is all there is to search.)
"""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from runner.fake import serve_fake
from runner.fake.config import FakeCredentials
from tests.cli_run import FAST, RunProcess, run_cli, run_env
from tests.run_support import all_jobs, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

SECRET_ID = "AKIDsecrets0000000000001"
SECRET_KEY = "sk-Zq8vT3nL0wXr7Yh2Kd5Jm9Pb4Fc6Ga1E"
WRONG_KEY = "sk-Wrong7Key4Never2Seen9Anywhere0Zz"
TOKEN = "tok-Hs3Lw8Qn2Vd7Rk5Xp1Bj6Mt4Cy9Fg0Ue"
SECRETS = (SECRET_KEY, WRONG_KEY, TOKEN)
JOBS = 6


def leaks_in(folder: Path, outputs: list[str]) -> list[str]:
    """Where a secret shows: every file under `folder` (bytes, so a database page counts)
    and every output."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{s[:6]}... in {path.name}" for s in SECRETS if s.encode() in data]
    for n, text in enumerate(outputs):
        found += [f"{s[:6]}... in output {n}" for s in SECRETS if s in text]
    return found


async def test_key_and_token_appear_nowhere_at_debug(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    home = tmp_path / "home"
    home.mkdir()
    creds = FakeCredentials(SECRET_ID, SECRET_KEY, TOKEN)
    faults = {"FailedOperation.InnerError": 0.3, "RequestLimitExceeded": 0.2}
    outputs: list[str] = []

    def cli(*args: str, key: str = SECRET_KEY, **extra: str) -> RunProcess:
        env = run_env(home, SECRET_ID, key, TENCENTCLOUD_SESSION_TOKEN=TOKEN, **extra)
        done = run_cli(["-vv", *args], env, tmp_path)
        outputs.extend([done.stdout, done.stderr])
        done.assert_no_traceback()
        return done

    run = ["run", f"--db={db}", f"--out={out}", "--concurrency=2", "--max-attempts=2", *FAST]
    async with serve_fake(
        credentials=creds, faults=faults, latency=0.2, concurrency=2, seed=9
    ) as server:
        run.append(f"--endpoint={server.url}")
        await submit(db, write_manifest(tmp_path / "m.csv", JOBS), server.url + "/")

        wrong_key = await anyio.to_thread.run_sync(lambda: cli(*run, key=WRONG_KEY))
        assert wrong_key.returncode == 3, "a key the service refuses halts the run"
        assert "AuthFailure" in wrong_key.stdout

        # Killed mid-run: its WAL and paid journal stay behind, to be searched too.
        env = run_env(home, SECRET_ID, SECRET_KEY, TENCENTCLOUD_SESSION_TOKEN=TOKEN)
        killed = RunProcess(["-vv", *run], env, tmp_path)
        await anyio.to_thread.run_sync(lambda: killed.wait_for_line("-> HTTP 200", count=2))
        killed.proc.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(killed.wait)
        outputs.extend([killed.stdout, killed.stderr])
        assert list(out.glob(".changeclothes-paid-*")), "the journal a kill leaves"
        assert Path(db + "-wal").exists(), "the WAL a kill leaves"
        assert not leaks_in(tmp_path, outputs)

        finished = await anyio.to_thread.run_sync(lambda: cli(*run))
        assert finished.returncode in (0, 1), finished.stderr[-3000:]
        assert "AuthFailure.TokenFailure" not in finished.stdout, "the token was sent"
    assert {j["state"] for j in await all_jobs(db)} <= {"done", "failed"}
    await anyio.to_thread.run_sync(lambda: cli("report", f"--db={db}", f"--out={out}"))
    await anyio.to_thread.run_sync(lambda: cli("export", f"--db={db}", "--output=export.jsonl"))
    assert list(out.glob("*.html")), "the report"
    assert (tmp_path / "export.jsonl").exists()
    assert not leaks_in(tmp_path, outputs)
