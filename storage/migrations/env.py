"""Alembic environment: the async engine of storage.db, the tables of storage.models.

Alembic calls this module for every command. The database URL comes from
`config.attributes["database_url"]` (see storage.migrate.alembic_config), else from the
`sqlalchemy.url` main option.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic import context
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (puts every table on SQLModel.metadata)
from storage.db import async_url, make_engine
from storage.migrate import migration_options

config = context.config
MIGRATION_LOCK = 0x0C05_7A8C  # the advisory lock every `upgrade` on PostgreSQL takes first
target_metadata = SQLModel.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use storage.migrate.alembic_config(url)")
    return url


def _sqlite_foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    """Batch migrations drop and re-create tables that others reference: SQLite's documented
    procedure is to switch foreign keys off (outside a transaction), then run foreign_key_check."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def run_migrations_offline() -> None:
    """`--sql` mode: print the SQL instead of running it."""
    url = async_url(_database_url())
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        target_metadata=target_metadata,
        **migration_options(make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        **migration_options(connection.dialect.name),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # instances started together on a new database would otherwise each create the
            # tables and block on one another's; the lock ends with the transaction, and the
            # next one in then finds the schema at head (SQLite's BEGIN takes its write lock)
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:5]}")


async def run_async_migrations() -> None:
    engine = make_engine(_database_url())
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_foreign_keys_off)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, also when this thread already runs an event loop (then in a fresh thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


if context.is_offline_mode():
    run_migrations_offline()
else:
    _run(run_async_migrations())
