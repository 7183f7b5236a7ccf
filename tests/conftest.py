"""Shared test fixtures.

Each section holds the fixtures of one concern; only the database ones live here so far.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import audit
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, make_session_factory
from storage.migrate import upgrade_database

# ---------------------------------------------------------------------------------------------
# Database
#
# Tests run on SQLite by default. With TEST_DATABASE_URL pointing at a PostgreSQL server
# (e.g. postgresql://postgres@127.0.0.1:55432/postgres; see tests/pg_server.sh), every test gets
# a fresh database of its own on that server instead, dropped when the test ends.
#
#   database_url     a fresh, EMPTY database (no tables): for migration tests
#   engine           an AsyncEngine on a fresh database upgraded to head by the real migrations
#   session_factory  make_session_factory(engine), whose sessions sign audit entries with
#                    `keyring` (a directory's conftest may override `keyring`)
#   master_key_text  the master key of the default `keyring`, as ENCRYPTION_KEYS takes it (so a
#                    CLI run in a test opens the same audit MAC key)
#   IS_POSTGRES      True when the tests run on PostgreSQL; `postgres_only` skips a test otherwise
# ---------------------------------------------------------------------------------------------

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
IS_POSTGRES = bool(TEST_DATABASE_URL)
postgres_only = pytest.mark.skipif(not IS_POSTGRES, reason="needs TEST_DATABASE_URL (PostgreSQL)")


def _server_url(database: str) -> str:
    """TEST_DATABASE_URL with another database name, as a plain postgresql:// URL."""
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database that only this test uses."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path}/test.db"
        return
    maintenance = _server_url(make_url(TEST_DATABASE_URL).database or "postgres")
    name = f"t_{secrets.token_hex(8)}"
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield _server_url(name)
    finally:
        connection = await asyncpg.connect(maintenance)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database whose schema the real migrations created."""
    await upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def master_key_text() -> str:
    return new_master_key()


@pytest.fixture
def keyring(master_key_text: str) -> Keyring:
    return Keyring([decode_master_key(master_key_text)])


@pytest.fixture
def session_factory(engine: AsyncEngine, keyring: Keyring) -> SessionFactory:
    factory = make_session_factory(engine)
    audit.use_keyring(factory, keyring)
    return factory
