"""Opening the queue database: URL from a path, SQLite pragmas, migrations on open.

Alembic is imported only when the schema is not at `HEAD_REVISION`: a command that finds the
database up to date (every `status` after the first) reads one row and pays for no more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import runner
from runner.store.errors import MigrationError
from runner.store.head import HEAD_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 60_000
"""How long a writer waits for another process's write transaction before giving up."""

PG_MIGRATION_LOCK = 0x63_63_72_75_6E  # "ccrun": the advisory lock held while migrating

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def database_url(db: str) -> URL:
    """A SQLAlchemy URL with an async driver from a file path or a URL.

    `queue.db` and `/data/queue.db` are SQLite files; `sqlite:///x.db` and
    `postgresql://...` get their async driver (aiosqlite, asyncpg) added.
    """
    if "://" not in db:
        return URL.create("sqlite+aiosqlite", database=str(Path(db).expanduser().absolute()))
    url = make_url(db)
    if url.drivername in _DRIVERS:
        url = url.set(drivername=_DRIVERS[url.drivername])
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database cannot hold a queue; give a file path")
    return url


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def migrations_dir() -> Path:
    """Alembic's script folder: shipped in the wheel as runner/_migrations, else the checkout's."""
    packaged = Path(runner.__file__).parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(runner.__file__).parent.parent / "migrations"


def alembic_config(url: URL | None = None) -> Config:
    """An Alembic configuration built in code: no alembic.ini is needed at run time."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        cfg.set_main_option(
            "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Leave transactions to SQLAlchemy's "begin" event below (pysqlite's own handling would
    # start them late and never as BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Write transactions take the write lock up front, waiting up to busy_timeout for it; a
    # deferred transaction that read first would fail at once with SQLITE_BUSY on its first write.
    options = conn.get_execution_options()
    if options.get("sqlite_foreign_keys_off"):  # a migration (see _migrating)
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    mode = "IMMEDIATE" if options.get("sqlite_immediate") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_index_hints() -> None:
    """Let `Select.with_hint(table, "INDEXED BY ix", "sqlite")` reach SQLite, whose compiler
    in SQLAlchemy drops table hints: a claim names its index, so that no statistics (those
    `PRAGMA optimize` samples with analysis_limit among them) can turn it into a sort of
    every queued job."""
    from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

    def from_hint(self: SQLiteCompiler, table: Any, text: str) -> str:
        return text

    SQLiteCompiler.get_from_hint_text = from_hint  # type: ignore[method-assign,assignment]


def create_engine(url: URL) -> AsyncEngine:
    """An async engine; for SQLite with WAL, a busy timeout, synchronous=NORMAL, foreign keys."""
    if url.get_backend_name() == "sqlite":
        _sqlite_index_hints()
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def head_revision() -> str:
    """The newest revision among the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision (None: no schema yet), read with a plain query."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _check_known(conn: Connection) -> None:
    from alembic.script import ScriptDirectory

    current = current_revision(conn)
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except Exception:  # alembic raises several kinds for an unknown id
        raise MigrationError(
            f"the database is at schema revision {current!r}, which this version of "
            "changeclothes does not know (it was made by a newer one); upgrade changeclothes"
        ) from None


def upgrade_sync(conn: Connection, revision: str = "head") -> None:
    """Bring the schema to `revision` on a sync connection, safe against concurrent openers.

    The caller's transaction is used: on SQLite it is BEGIN IMMEDIATE, so a second process
    waits for the first to finish and then finds nothing to do; on PostgreSQL an advisory lock
    does the same.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    from alembic import command

    _check_known(conn)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def downgrade_sync(conn: Connection, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade to `revision` unless the schema is already there (checked without locking)."""
    head = HEAD_REVISION if revision == "head" else revision
    async with engine.connect() as conn:
        if await conn.run_sync(current_revision) == head:
            await conn.rollback()
            return
        await conn.rollback()
    await _migrating(engine, upgrade_sync, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _migrating(engine, downgrade_sync, revision)


async def _migrating(
    engine: AsyncEngine, step: Callable[[Connection, str], None], revision: str
) -> None:
    """Run a migration step in one write transaction.

    SQLite can change a table's constraints only by rebuilding it, which drops the old table:
    with foreign keys on, that would fire ON DELETE actions in the tables that point at it.
    So, as SQLite's documentation prescribes, foreign keys are off while migrating (a pragma
    that only takes effect outside a transaction) and checked before the commit.
    """
    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as conn:
        try:
            await conn.execution_options(sqlite_immediate=True, sqlite_foreign_keys_off=sqlite)
            async with conn.begin():
                await conn.run_sync(step, revision)
                if sqlite and (await conn.exec_driver_sql("PRAGMA foreign_key_check")).first():
                    raise MigrationError(f"migrating to {revision} broke a foreign key")
        finally:
            if sqlite:  # never hand a connection without foreign keys back to the pool
                await conn.invalidate()


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(current_revision)
