"""A notice at dawn: --notify POSTs the summary (retried), --on-finish gets it on stdin,
--json prints it, and run-<time>.json lies beside the results. None of them fails the run."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from runner.fake import FakeServer, serve_fake
from tests.run_support import submit, write_manifest
from tests.subprocess_support import runner_env

pytestmark = pytest.mark.anyio

BAD_ROW = ("bad", "images/model-02.jpg", "images/broken-01.jpg", "Upper-body")


@asynccontextmanager
async def receiver(fail_first: int) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that answers 500 `fail_first` times, then 204; what it got."""
    received: list[dict[str, Any]] = []
    seen = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen <= fail_first:
            return web.Response(status=500)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook", received
    finally:
        await runner.cleanup()


def command(db: str, out: Path, server: FakeServer, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "runner", "run", "--db", db, "--out", str(out),
        "--endpoint", server.url, *extra,
    ]  # fmt: skip


async def test_summary_is_posted_handed_to_a_command_printed_and_kept(tmp_path: Path) -> None:
    db, out = str(tmp_path / "queue.db"), tmp_path / "out"
    manifest = write_manifest(tmp_path / "m.csv", 3)
    with manifest.open("a") as fh:
        fh.write(",".join(BAD_ROW) + "\n")
    got_on_stdin = tmp_path / "on-finish.json"
    async with serve_fake(seed=8) as server, receiver(fail_first=1) as (url, received):
        await submit(db, manifest, server.url + "/")
        done = await anyio.run_process(
            command(
                db,
                out,
                server,
                "--json",
                "--notify",
                url,
                "--on-finish",
                f"cat > {got_on_stdin}",
            ),  # fmt: skip
            env=runner_env(server),
            check=False,
        )
    assert done.returncode == 1, done.stderr.decode()  # one bad row failed
    printed = json.loads(done.stdout)
    assert printed["exit_code"] == 1
    assert printed["this_run"]["done"] == 3
    assert printed["this_run"]["failed_by_code"] == {"FailedOperation.ImageDecodeFailed": 1}
    assert printed["this_run"]["paid_calls"] == 3
    assert printed["queue_now"]["done"] == 3 and printed["queue_now"]["failed"] == 1
    assert printed["wall_time_s"] > 0
    assert received == [printed], "posted once, after one refused try"
    assert json.loads(got_on_stdin.read_text()) == printed
    kept = list(out.glob("run-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == printed
    assert "This run: 3 done, 1 failed" in done.stderr.decode()


async def test_a_notice_that_cannot_be_delivered_never_fails_the_run(tmp_path: Path) -> None:
    db, out = str(tmp_path / "queue.db"), tmp_path / "out"
    async with serve_fake(seed=9) as server:
        await submit(db, write_manifest(tmp_path / "m.csv", 2), server.url + "/")
        with anyio.fail_after(120):
            done = await anyio.run_process(
                command(
                    db,
                    out,
                    server,
                    "--notify",
                    "http://127.0.0.1:9/nobody",
                    "--on-finish",
                    "exit 7",
                ),  # fmt: skip
                env=runner_env(server),
                check=False,
            )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "Could not notify http://127.0.0.1:9/nobody after 3 tries" in err
    assert "--on-finish command exited with 7" in err
    assert "Traceback" not in err
