"""`changeclothes run` as a real subprocess, for the tests of a bad night: its exit code, its
output, and its own peak memory (from wait4, so other children of the test run do not count).

The run's stderr is read line by line as it comes, so a test can act on a log line (the
outage warning, say) instead of guessing with a sleep.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "changeclothes"
# Fast retries and backoff, so a test spends its time on what it tests.
FAST = (
    "--retry-delay=0.05",
    "--backoff-base=0.05",
    "--backoff-cap=0.3",
)


def changeclothes() -> list[str]:
    """The installed console script, as a user runs it (or the module, outside a venv)."""
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "runner"]


def run_env(home: Path, secret_id: str, secret_key: str, **extra: str) -> dict[str, str]:
    """A clean environment: this account's key, a home with no credentials file, and none of
    the developer's CHANGECLOTHES_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGECLOTHES_", "TENCENT"))}
    env.update(HOME=str(home), TENCENTCLOUD_SECRET_ID=secret_id, TENCENTCLOUD_SECRET_KEY=secret_key)
    # Off a terminal rich wraps at 80 columns, which would cut a long path in two.
    env["COLUMNS"] = "1000"
    env.update(extra)
    return env


class RunProcess:
    """One `changeclothes` command in a process of its own."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        cwd: Path,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.stdout_path = cwd / f"stdout-{os.urandom(4).hex()}"
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.returncode: int | None = None
        self.peak_rss_mb = 0.0
        with self.stdout_path.open("w") as stdout:
            self.proc = subprocess.Popen(
                [*changeclothes(), *args],
                env=env,
                cwd=cwd,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                preexec_fn=preexec_fn,
            )
        threading.Thread(target=self._read, daemon=True).start()
        self._reaped = threading.Thread(target=self._reap, daemon=True)
        self._reaped.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _reap(self) -> None:
        # wait4 gives this child's own peak RSS; Popen is told the code so it never reaps.
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.peak_rss_mb = usage.ru_maxrss / 1024
        self.returncode = self.proc.returncode = os.waitstatus_to_exitcode(status)

    def wait_for_line(self, text: str, timeout: float = 60, count: int = 1) -> str:
        """The `count`th stderr line containing `text`; fails the test if the process ends,
        or `timeout` passes, without it."""

        def matches() -> list[str]:
            return [line for line in self._lines if text in line]

        with self._changed:
            found = self._changed.wait_for(lambda: self._eof or len(matches()) >= count, timeout)
            match = matches()[count - 1] if len(matches()) >= count else None
        if not found or match is None:
            self.kill()
            pytest.fail(f"no line with {text!r} on stderr:\n{self.stderr[-3000:]}")
        return match

    def wait(self, timeout: float = 120) -> int:
        """The exit code; a run still going after `timeout` is killed and the test fails
        (a bound on the run, generous for a loaded machine: not a timing assertion)."""
        self._reaped.join(timeout)
        if self.returncode is None:
            self.kill()
            pytest.fail(f"the run did not end within {timeout} s:\n{self.stderr[-3000:]}")
        with self._changed:
            self._changed.wait_for(lambda: self._eof, 10)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.proc.kill()
            self._reaped.join(10)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def assert_no_traceback(self) -> None:
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            assert "Traceback" not in text, f"a traceback on {name}:\n{text[-3000:]}"


def run_cli(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> RunProcess:
    """Runs one command to its end."""
    process = RunProcess(args, env, cwd, preexec_fn)
    process.wait(timeout)
    return process


def paid_calls_reported(db: str, env: dict[str, str], cwd: Path) -> int:
    """The paid calls `changeclothes report` counts from the queue (what a user is billed for
    by the runner's own record)."""
    report = run_cli(["report", f"--db={db}", f"--output={cwd / 'report.html'}"], env, cwd)
    assert report.returncode == 0, report.stdout + report.stderr
    found = re.search(r"(\d+) paid calls?\.", report.stdout)
    assert found, report.stdout
    return int(found.group(1))


def this_run_counts(output: str) -> tuple[int, int]:
    """(paid calls, results generated again) from the summary `run` prints at its end."""
    found = re.search(r"(\d+) paid calls?, (\d+) results? generated again", output)
    assert found, output
    return int(found.group(1)), int(found.group(2))
