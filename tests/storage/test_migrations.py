"""Migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from storage.db import SessionFactory, async_url, make_engine, unit_of_work
from storage.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    migration_options,
    upgrade_database,
    upgrade_database_sync,
)
from storage.models import Team
from tests.conftest import IS_POSTGRES

EXPRESSION_INDEXES = {"ix_customers_recheck_due": "coalesce(last_checked_at, approved_at)"}


def _differences(connection: Connection) -> list[Any]:
    """What autogenerate would change; expression indexes it cannot compare are checked by
    test_expression_indexes_are_built_as_the_models_say."""
    context = MigrationContext.configure(
        connection, opts=migration_options(connection.dialect.name)
    )
    with warnings.catch_warnings():
        for name in EXPRESSION_INDEXES:
            warnings.filterwarnings("ignore", f".*expression-based index '?{name}")
        return compare_metadata(context, SQLModel.metadata)


def _index_definitions(connection: Connection) -> dict[str, str]:
    if connection.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    return {name: sql for name, sql in connection.execute(text(query)).all()}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _run(engine: AsyncEngine, fn: Any) -> Any:
    async with engine.connect() as connection:
        return await connection.run_sync(fn)


def test_one_head_shipped_with_the_package() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db"))
    assert MIGRATIONS_DIR.is_dir()
    assert script.get_heads() == [script.get_current_head()]
    assert script.get_base() == "0001_initial"


async def test_upgrade_head_matches_models(engine: AsyncEngine) -> None:
    assert await _run(engine, _differences) == []
    tables = await _run(engine, _tables)
    assert set(SQLModel.metadata.tables) | {"alembic_version"} == tables


async def test_expression_indexes_are_built_as_the_models_say(engine: AsyncEngine) -> None:
    built = await _run(engine, _index_definitions)
    for index in SQLModel.metadata.tables["customers"].indexes:
        if index.name in EXPRESSION_INDEXES:
            expression = EXPRESSION_INDEXES[index.name]
            assert expression in str(list(index.expressions)[-1]), index.expressions
            assert expression.replace(" ", "") in built[index.name].replace(" ", "").lower(), built
            assert "(owner_id, status," in built[index.name], built
    for name in ("ix_customers_recheck_due", "ix_customers_survey_due"):
        # partial: the models' WHERE is the one built (autogenerate does not compare it)
        bare = built[name].lower().replace("(", "").replace(")", "")
        assert bare.endswith("where pooled_at is null"), built[name]


async def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    await upgrade_database(database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
    engine = make_engine(database_url)
    try:
        assert await _run(engine, _tables) <= {"alembic_version"}
        await upgrade_database(database_url)
        assert await _run(engine, _differences) == []
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent_and_sync_call_works_inside_a_loop(database_url: str) -> None:
    await upgrade_database(database_url)
    upgrade_database_sync(database_url)  # env.py moves its own event loop to a thread
    engine = make_engine(database_url)
    try:
        version = await _run(
            engine, lambda c: c.execute(text("SELECT version_num FROM alembic_version")).all()
        )
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert version == [(head,)] and head != "0001_initial"
    finally:
        await engine.dispose()


async def test_utc_datetime_round_trips_timezone_aware(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=shanghai)
    async with unit_of_work(session_factory) as session:
        session.add(Team(name="East", created_at=moment, updated_at=moment))

    async with session_factory() as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).one()
    assert team.created_at == moment
    assert team.created_at.tzinfo is UTC
    assert team.created_at.hour == 1

    async with engine.connect() as connection:
        raw = (await connection.execute(text("SELECT created_at FROM teams"))).scalar_one()
    if IS_POSTGRES:
        assert raw == moment and raw.utcoffset() == timedelta(0)  # timestamptz
    else:
        assert str(raw).startswith("2026-03-01 01:30:15.123456")  # stored as UTC


async def test_naive_datetime_is_refused(session_factory: SessionFactory) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with unit_of_work(session_factory) as session:
            session.add(Team(name="Naive", created_at=datetime(2026, 1, 1)))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x", "sqlite+aiosqlite:///x"),
        ("sqlite:////abs/path/archive.db", "sqlite+aiosqlite:////abs/path/archive.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u:p%40ss@h:5433/db", "postgresql+asyncpg://u:p%40ss@h:5433/db"),
    ],
)
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "mysql+aiomysql://u@h/db", "oracle://u@h/db"])
def test_async_url_refuses_other_databases(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        async_url(url)


async def test_two_instances_migrating_an_empty_database_at_once_both_start(
    database_url: str,
) -> None:
    """Instances started together on a new database each run `upgrade` first, each its own
    process: on PostgreSQL they used to block on one another's new tables for ever. Now the
    later ones wait for the first and find nothing to do (issue 15)."""
    command_line = [sys.executable, "-m", "storage.migrate", "upgrade", "--url", database_url]
    runs = [
        await asyncio.create_subprocess_exec(
            *command_line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        for _ in range(3)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(run.communicate() for run in runs)), 120)
    assert [run.returncode for run in runs] == [0, 0, 0], [out for out, _ in outputs]
    engine = make_engine(database_url)
    try:
        assert await _run(engine, _differences) == []
        versions = await _run(
            engine, lambda c: c.execute(text("SELECT version_num FROM alembic_version")).all()
        )
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert [row[0] for row in versions] == [head]
    finally:
        await engine.dispose()
