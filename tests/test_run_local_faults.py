"""Faults of this machine halt the run with exit 5 and one sentence that names the path, and
never a traceback; after the fix, a rerun finishes every job with a valid file and pays again
for at most the calls that were in flight (paid <= N + concurrency).

A full disk is a small tmpfs mounted by the test when it runs as root (RLIMIT_FSIZE on the run
otherwise); a read-only folder a read-only tmpfs (chmod otherwise: root ignores it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from runner.fake import FakeServer, serve_fake
from runner.fake.config import FakeCredentials
from tests.cli_run import (
    FAST,
    RunProcess,
    paid_calls_reported,
    run_cli,
    run_env,
    this_run_counts,
)
from tests.run_support import all_jobs, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CREDS = FakeCredentials("AKIDlocalfault000001", "local-fault-secret-key")
JOBS = 5
CONCURRENCY = 2
BATCH = "night"
ROOT = os.geteuid() == 0
# Opening a store runs its migrations through Alembic's process-wide context: scenarios
# running side by side in this process take turns at it (the runs are processes of their own).
STORE_OPEN = anyio.Lock()


async def jobs_of(db: str) -> list[dict[str, Any]]:
    async with STORE_OPEN:
        return await all_jobs(db)


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    _sh("mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path))
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            _sh("umount", "-l", str(path))  # something still holds it: detach it anyway


def remount(path: Path, *options: str) -> None:
    _sh("mount", "-o", ",".join(["remount", *options]), str(path))


def file_size_limit(limit: int) -> Callable[[], None]:
    """For preexec_fn: files of the run may not grow past `limit` bytes (EFBIG, not SIGXFSZ)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run_args(db: str, out: Path, server: FakeServer, *extra: str) -> list[str]:
    return [
        "run",
        f"--db={db}",
        f"--out={out}",
        f"--endpoint={server.url}",
        f"--concurrency={CONCURRENCY}",
        *FAST,
        *extra,
    ]


class Night:
    """A queue of JOBS jobs in batch BATCH, the fake serving them, and runs of `run`."""

    def __init__(
        self, tmp_path: Path, server: FakeServer, db: str, out: Path, extra: tuple[str, ...]
    ) -> None:
        self.tmp_path, self.server, self.db, self.out = tmp_path, server, db, out
        self.extra = extra  # options of every run, e.g. --rsp-img-type=base64
        self.env = run_env(tmp_path, CREDS.secret_id, CREDS.secret_key)

    async def run(self, preexec_fn: Callable[[], None] | None = None) -> RunProcess:
        args = run_args(self.db, self.out, self.server, *self.extra)
        return await anyio.to_thread.run_sync(
            lambda: run_cli(args, self.env, self.tmp_path, preexec_fn=preexec_fn)
        )

    async def paid_on_record(self) -> int:
        return await anyio.to_thread.run_sync(
            lambda: paid_calls_reported(self.db, self.env, self.tmp_path)
        )

    async def assert_halted_naming(self, run: RunProcess, path: Path) -> None:
        assert run.returncode == 5, f"{run.stdout}\n{run.stderr[-3000:]}"
        run.assert_no_traceback()
        halted = [line for line in run.stdout.splitlines() if line.startswith("Halted")]
        assert len(halted) == 1, run.stdout + run.stderr
        assert str(path) in halted[0], halted[0]
        assert halted[0].rstrip().endswith("results already paid for are kept."), halted[0]

    async def assert_rerun_completes(self) -> None:
        rerun = await self.run()
        assert rerun.returncode == 0, f"{rerun.stdout}\n{rerun.stderr[-3000:]}"
        rerun.assert_no_traceback()
        jobs = await jobs_of(self.db)
        assert [j["state"] for j in jobs] == ["done"] * JOBS
        for job in jobs:
            path = Path(job["output_path"])
            assert hashlib.sha256(path.read_bytes()).hexdigest() == job["sha256"]
            with Image.open(path) as image:
                image.load()
        paid = self.server.stats()["calls"].get("OK", 0)
        assert paid <= JOBS + CONCURRENCY, f"{paid} paid calls for {JOBS} jobs"


@contextlib.asynccontextmanager
async def night(
    tmp_path: Path, db: str | None = None, extra: tuple[str, ...] = ()
) -> AsyncIterator[Night]:
    db = db or str(tmp_path / "queue.db")
    async with serve_fake(
        credentials=CREDS, seed=3, latency=0.05, concurrency=CONCURRENCY
    ) as server:
        manifest = write_manifest(tmp_path / "m.csv", JOBS)
        async with STORE_OPEN:
            await submit(db, manifest, server.url + "/", batch=BATCH)
        yield Night(tmp_path, server, db, tmp_path / "out", extra)


async def disk_full_under_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    if ROOT:
        with tmpfs(out, "100k"):  # room for two results
            async with night(tmp_path) as n:
                await n.assert_halted_naming(await n.run(), out)
                assert any(j["state"] == "done" for j in await jobs_of(n.db)), "it filled up"
                remount(out, "size=64m")
                await n.assert_rerun_completes()
    else:
        async with night(tmp_path) as n:
            first = await n.run(preexec_fn=file_size_limit(20_000))
            assert first.returncode == 5, first.stderr[-3000:]
            first.assert_no_traceback()
            await n.assert_rerun_completes()


async def disk_full_under_out_base64(tmp_path: Path) -> None:
    """A base64 result is paid for before it is written: one that finds the disk full is on
    record as paid and counted as a regeneration (not handed back as if never called)."""
    out = tmp_path / "out"
    with tmpfs(out, "100k"):  # room for two results
        async with night(tmp_path, extra=("--rsp-img-type=base64",)) as n:
            first = await n.run()
            await n.assert_halted_naming(first, out)
            jobs = await jobs_of(n.db)
            done = sum(j["state"] == "done" for j in jobs)
            regenerated = sum(j["regenerations"] for j in jobs)
            assert regenerated >= 1, "the result that found the disk full is generated again"
            paid = n.server.stats()["calls"].get("OK", 0)
            assert paid == done + regenerated, (paid, done, regenerated)
            assert this_run_counts(first.stdout) == (paid, regenerated), first.stdout
            assert await n.paid_on_record() == paid, "every paid call is on record"
            remount(out, "size=64m")
            await n.assert_rerun_completes()


async def read_only_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        if ROOT:
            stack.enter_context(tmpfs(out, "64m", "ro"))
        else:
            out.mkdir()
            out.chmod(0o555)
            stack.callback(out.chmod, 0o755)
        async with night(tmp_path) as n:
            await n.assert_halted_naming(await n.run(), out)
            assert n.server.stats()["calls"] == {}, "nothing is called that cannot be kept"
            if ROOT:
                remount(out, "rw")
            else:
                out.chmod(0o755)
            await n.assert_rerun_completes()


async def file_where_the_batch_folder_should_be(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / BATCH).write_text("not a folder")
    async with night(tmp_path) as n:
        await n.assert_halted_naming(await n.run(), out / BATCH)
        (out / BATCH).unlink()
        await n.assert_rerun_completes()


async def database_disk_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "dbdisk", "2m") as disk:
        db = disk / "queue.db"
        async with night(tmp_path, db=str(db)) as n:
            # Fill the disk, leaving room to open the database and little more.
            filler = disk / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
            os.close(fd)
            os.truncate(filler, filler.stat().st_size - 128 * 1024)
            await n.assert_halted_naming(await n.run(), db)
            filler.unlink()
            await n.assert_rerun_completes()


SCENARIOS: dict[str, Callable[[Path], Awaitable[None]]] = {
    "disk-full": disk_full_under_out,
    "read-only": read_only_out,
    "file-for-folder": file_where_the_batch_folder_should_be,
}
if ROOT:  # the database's disk (a base64 result's folder) needs a small file system of its own
    SCENARIOS["database-full"] = database_disk_full
    SCENARIOS["disk-full-base64"] = disk_full_under_out_base64


async def test_each_local_fault_exits_5_naming_the_path_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    """The scenarios run side by side (each with its own queue, folder and fake server):
    the test costs one of them, not four."""

    async def scenario(name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        try:
            await SCENARIOS[name](folder)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc

    async with anyio.create_task_group() as tg:
        for name in SCENARIOS:
            tg.start_soon(scenario, name)
