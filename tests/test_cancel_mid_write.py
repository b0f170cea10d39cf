"""A task cancelled while its write statement runs in the database driver's thread (what a
failing sibling task does to the calls in flight) must not leave SQLite's write lock behind.

It did: the cancelled connection was dropped mid-transaction, and the next write, the
shielded release a cancelled call makes on its way out, waited out the 60 s busy timeout,
once per call in flight, and then failed, leaving the job `submitting`. That was the run
that hung in task cancellation.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runner.store import open_store
from tests.run_support import all_jobs, submit, write_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def test_write_cancelled_mid_statement_leaves_no_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "queue.db")
    await submit(db, write_manifest(tmp_path / "m.csv", 3), "http://127.0.0.1/")
    store = await open_store(db)
    started, proceed = threading.Event(), threading.Event()

    def hold() -> int:
        """Runs in the driver's thread: keeps the statement going until the test says."""
        started.set()
        proceed.wait(30)
        return 1

    def add_function(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("hold", 0, hold)

    event.listen(store.engine.sync_engine, "connect", add_function)
    await store.engine.dispose()  # pooled connections predate the function

    async def write() -> None:
        async with store.transaction(immediate=True) as conn:
            await conn.execute(sa.text("UPDATE jobs SET attempts = attempts + 1"))
            await conn.execute(sa.text("SELECT hold()"))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.to_thread.run_sync(started.wait, 30)
            tg.cancel_scope.cancel()  # lands while SELECT hold() runs in the driver's thread
            proceed.set()
        # The next write gets the lock: a bound far below the 60 s busy timeout, not a
        # timing assertion.
        with anyio.fail_after(20):
            async with store.transaction(immediate=True) as conn:
                await conn.execute(sa.text("UPDATE jobs SET attempts = attempts + 10"))
    finally:
        proceed.set()
        await store.close()
    # The cancelled write was whole (it finished before the cancel took effect) or absent.
    assert {j["attempts"] for j in await all_jobs(db)} in ({10}, {11})
