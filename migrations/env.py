"""Alembic environment for the changeclothes queue.

The runner calls Alembic in code with an open connection in `config.attributes["connection"]`
(see runner/store/database.py). The `alembic` command line (with the top-level alembic.ini)
gets no connection: then the URL comes from `-x db=...`, `CHANGECLOTHES_DB` or alembic.ini,
and an async engine is made here.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from runner.store.database import create_engine, database_url
from runner.store.lifecycle import declare_partial_indexes
from runner.store.models import Base

config = context.config
declare_partial_indexes()
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("db")
        or os.environ.get("CHANGECLOTHES_DB")
        or config.get_main_option("sqlalchemy.url")
        or "changeclothes.db"
    )


async def _run_async() -> None:
    engine = create_engine(database_url(_url()))
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=str(database_url(_url())), target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
elif (conn := config.attributes.get("connection")) is not None:
    _run(conn)
else:
    asyncio.run(_run_async())
