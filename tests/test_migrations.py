"""Migrations: empty → head, down and up again, rows kept across an upgrade, models == schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from runner.store import JobSelection, MigrationError, move_selected, open_store
from runner.store.database import (
    HEAD_REVISION,
    create_engine,
    current,
    database_url,
    downgrade,
    head_revision,
    migrate,
    migrations_dir,
)
from runner.store.lifecycle import declare_partial_indexes
from runner.store.models import Base

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parent.parent
TABLES = {
    "batches",
    "jobs",
    "events",
    "submissions",
    "image_checks",
    "invalid_rows",
    "runners",
    "accounts",
    "leases",
    "job_counts",
    "alembic_version",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(database_url(url))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def test_the_revisions_are_in_order_and_head_is_the_newest() -> None:
    versions = sorted(p.name for p in (migrations_dir() / "versions").glob("0*.py"))
    assert versions == [
        "0001_initial.py",
        "0002_submissions.py",
        "0003_cancelled.py",
        "0004_regenerations.py",
        "0005_review.py",
        "0006_runners.py",
        "0007_scale.py",
    ]
    assert head_revision() == "0007"
    # The constant read at start-up without loading Alembic is Alembic's head.
    assert head_revision() == HEAD_REVISION


async def test_opening_an_empty_database_migrates_it_to_head(db: str) -> None:
    store = await open_store(db)
    await store.close()
    assert await _tables(db) == TABLES
    engine = create_engine(database_url(db))
    try:
        assert await current(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_upgrade_again(db: str) -> None:
    engine = create_engine(database_url(db))
    try:
        await migrate(engine)
        await downgrade(engine, "base")
        assert await current(engine) is None
        assert await _tables(db) <= {"alembic_version"}
        await migrate(engine)
        assert await current(engine) == head_revision()
        assert await _tables(db) == TABLES
    finally:
        await engine.dispose()


async def test_database_at_previous_revision_upgrades_with_rows_intact(db: str) -> None:
    engine = create_engine(database_url(db))
    at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    try:
        await migrate(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO batches (id, name, source_path, content_sha256, submitted_at,"
                    " options) VALUES (1, 'spring', '/m/spring.csv', :sha, :at, :opts)"
                ),
                {"sha": "ab" * 32, "at": at, "opts": json.dumps({"base_url": None})},
            )
            for i, (state, linked) in enumerate(
                [("done", None), ("queued", None), ("linked", 2)], start=1
            ):
                await conn.execute(
                    sa.text(
                        "INSERT INTO jobs (id, batch_id, external_id, model_url, clothes_url, "
                        "clothes_type, options, dedupe_key, linked_job_id, state, attempts, "
                        "created_at, updated_at, output_path) VALUES (:id, 1, :ext, 'https://m', "
                        "'https://c', 'Dress', :opts, :key, :linked, :state, 1, :at, :at, :out)"
                    ),
                    {
                        "id": i,
                        "ext": f"job-{i}",
                        "opts": json.dumps({"logo_add": 0}),
                        "key": f"{i}" * 64,
                        "linked": linked,
                        "state": state,
                        "at": at,
                        "out": f"/out/{i}.jpg",
                    },
                )
            await conn.execute(
                sa.text(
                    "INSERT INTO events (job_id, batch_id, kind, at, code, latency_ms) "
                    "VALUES (1, 1, 'call', :at, 'OK', 1234)"
                ),
                {"at": at},
            )
        assert await current(engine) == "0001"

        store = await open_store(db)  # migrates on open
        try:
            job = await store.get_job(3)
            assert job is not None
            assert (job.external_id, job.state, job.linked_job_id) == ("job-3", "linked", 2)
            assert job.options == {"logo_add": 0}
            assert job.created_at == at and job.created_at.tzinfo is not None
            assert await store.counts() == {
                "spring": {
                    "queued": 1,
                    "submitting": 0,
                    "generated": 0,
                    "done": 1,
                    "failed": 0,
                    "linked": 1,
                    "cancelled": 0,
                }
            }
            summary = await store.event_summary()
            assert summary.paid_calls == 1
            cancelled = await move_selected(store, "cancel", JobSelection(ids=["job-2"]))
            assert cancelled.by_state == {"queued": 1}  # the new state is admitted
            follower = await store.get_job(3)  # waited for job-2: now runs on its own
            assert follower is not None
            assert (follower.state, follower.linked_job_id) == ("queued", None)
        finally:
            await store.close()
        async with engine.connect() as conn:
            sub = (await conn.execute(sa.text("SELECT * FROM submissions"))).mappings().one()
        assert sub["batch_id"] == 1 and sub["content_sha256"] == "ab" * 32
        assert (sub["row_count"], sub["queued"], sub["linked"]) == (3, 2, 1)
        # The jobs table was rebuilt for its new state check: the events still point at it.
        async with engine.connect() as conn:
            event_jobs = (await conn.execute(sa.text("SELECT job_id FROM events"))).all()
        assert [r.job_id for r in event_jobs][0] == 1
        assert await current(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_models_match_the_migrated_schema(db: str) -> None:
    engine = create_engine(database_url(db))
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            declare_partial_indexes()

            def diff(sync_conn: sa.Connection) -> list[object]:
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(ctx, Base.metadata))

            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_sqlite_pragmas_are_set_on_every_connection(tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "sub" / "q.db"))  # the folder is created
    try:
        async with store.transaction() as conn:
            values = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert values[0] == "wal"
        assert values[1] == 1  # NORMAL
        assert values[2] == 1
        assert values[3] == 60_000
    finally:
        await store.close()


async def test_a_database_from_a_newer_version_is_refused_clearly(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    await (await open_store(path)).close()
    engine = create_engine(database_url(path))
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    await engine.dispose()
    with pytest.raises(MigrationError, match="newer"):
        await open_store(path)


def test_two_processes_opening_a_new_sqlite_file_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    code = textwrap.dedent(
        f"""
        import anyio, sys
        from runner.store import open_store
        async def main():
            store = await open_store({str(path)!r})
            print(await store.has_work())
            await store.close()
        anyio.run(main)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], results
    assert all(out.strip() == "False" for out, _ in results)


def test_wheel_ships_migrations_inside_the_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["migrations"] == "runner/_migrations"


def test_installed_layout_migrates_without_the_checkout(tmp_path: Path) -> None:
    """As from a wheel: the package alone with runner/_migrations, run from elsewhere."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "runner", site / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "migrations",
        site / "runner" / "_migrations",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = textwrap.dedent(
        """
        import anyio
        from runner.store import open_store
        from runner.store.database import migrations_dir
        print(migrations_dir())
        async def main():
            store = await open_store("q.db")
            print(await store.counts())
            await store.close()
        anyio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(site / "runner" / "_migrations")
    assert lines[1] == "{}"
    assert (elsewhere / "q.db").exists()


def test_public_surfaces_are_whole() -> None:
    import runner.manifest
    import runner.store

    for module in (runner.store, runner.manifest):
        for name in module.__all__:
            assert getattr(module, name) is not None
        public = {
            n
            for n in vars(module)
            if not n.startswith("_") and not isinstance(getattr(module, n), type(runner))
        }
        assert public <= set(module.__all__) | {"annotations"}


async def test_concurrent_openers_of_a_new_database_all_succeed(db: str) -> None:
    import anyio

    stores: list[object] = []

    async def opener() -> None:
        stores.append(await open_store(db))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(opener)
    for s in stores:
        await s.close()  # type: ignore[attr-defined]
    assert len(stores) == 4
    assert await _tables(db) == TABLES
