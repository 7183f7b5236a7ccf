"""Shared test fixtures.

Each section holds the fixtures of one concern: the database, then the bot on the fake Telegram.
Shared tools (the fake Telegram, factories, helpers) live in tests/auxil/.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.context import Services
from bot.settings import Settings
from storage import audit, erasure_ledger
from storage.crypto import Keyring, decode_master_key, new_master_key
from storage.db import SessionFactory, make_engine, make_session_factory
from storage.erasure_ledger import Ledger
from storage.migrate import upgrade_database
from storage.reminders import cursor, registry
from tests.auxil.fake_telegram import TOKEN, FakeTelegram
from tests.auxil.settings_env import clean_settings_env
from tests.auxil.world import ADMIN_ID, NOW, World, start_app

# ---------------------------------------------------------------------------------------------
# Planning is not sliced by the clock in tests
#
# Over a million customers a poll plans one whole day, and one of the planners that run every
# few hours, when it has no time for more (storage.reminders.cursor.DAY_BUDGET,
# storage.reminders.registry.PERIODIC_BUDGET). On the tests' few rows it always has time, but
# on a loaded machine a poll can still take long enough to defer one; so the tests' polls never
# do, and the tests of the slicing set the budgets themselves (tests/conversations/
# test_catch_up.py).
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _planning_never_sliced_by_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cursor, "DAY_BUDGET", float("inf"))
    monkeypatch.setattr(registry, "PERIODIC_BUDGET", float("inf"))


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
def session_factory(engine: AsyncEngine, keyring: Keyring, tmp_path: Path) -> SessionFactory:
    """Sessions as the bot makes them: audit entries keyed, erasures recorded in a ledger in
    tmp_path (the `settings` fixture's DATA_DIR, where the bot keeps it by default)."""
    factory = make_session_factory(engine)
    audit.use_keyring(factory, keyring)
    erasure_ledger.use(factory, Ledger(tmp_path / "erasures.log", keyring))
    return factory


# ---------------------------------------------------------------------------------------------
# The bot on the fake Telegram (tests/auxil/world.py)
#
#   settings  the bot's settings: a test token, DATA_DIR in tmp_path, ADMIN_ID as admin, and
#             the team pool off (POOL_AFTER_DAYS=off), so tests that move the clock months on
#             keep their customers; tests/bot/test_pool_settings.py checks the real default and
#             the pool's own tests switch it on
#   services  the bot's services on `session_factory` and `keyring`, its clock stopped at NOW
#   world     the running application on a FakeTelegram; a message Telegram would refuse fails
#             the test (unless the test set `expect_refusals`)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        POOL_AFTER_DAYS="off",
    )


@pytest.fixture
def services(settings: Settings, session_factory: SessionFactory, keyring: Keyring) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=lambda: NOW)


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    telegram = FakeTelegram()
    app = await start_app(services, telegram)
    world = World(app, telegram, services, itertools.count(700_001))
    try:
        yield world
    finally:
        await app.shutdown()
    # a message Telegram would refuse fails its test, even where the bot carried on after it
    refused = [(r.method, r.description) for r in world.telegram.refused]
    assert world.telegram.expect_refusals or not refused, refused


# ---------------------------------------------------------------------------------------------
# The command line (`python -m bot ...`, run with tests/auxil/cli_helpers.run_cli)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, master_key_text: str
) -> Path:
    """The environment `python -m bot` reads: the test's database and master key (so its audit
    entries chain with the bot's), a data folder in tmp_path."""
    clean_settings_env(
        monkeypatch,
        tmp_path,
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        BOT_USERNAME="archive_bot",
        ENCRYPTION_KEYS=master_key_text,
    )
    return tmp_path
