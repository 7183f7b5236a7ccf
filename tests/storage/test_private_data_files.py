"""The data folder is 0700 and the SQLite files 0600 whoever starts the bot, not only under
systemd's UMask: the database holds the archive, its side files recent changes of it."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main
from storage.crypto import load_or_create_keys
from storage.db import make_engine, make_session_factory, unit_of_work
from tests.auxil.settings_env import clean_settings_env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """A login shell's umask: left alone, files would be 0644 and folders 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_migrate_creates_a_private_data_folder_and_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    clean_settings_env(monkeypatch, tmp_path, DATA_DIR=str(data))
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert mode(data) == 0o700
    assert mode(data / "archive.db") == 0o600


async def test_the_write_ahead_log_and_shared_memory_files_are_private(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "data" / "archive.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        async with unit_of_work(make_session_factory(engine)) as session:
            await session.exec(text("CREATE TABLE notes (body TEXT)"))
            await session.exec(text("INSERT INTO notes VALUES ('x')"))
        side_files = [Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert all(path.exists() for path in side_files)  # while a connection is open
        assert [mode(path) for path in [database, *side_files]] == [0o600] * 3
        assert mode(database.parent) == 0o700
    finally:
        await engine.dispose()


async def test_an_existing_folder_is_left_as_it_is(tmp_path: Path) -> None:
    """DATABASE_URL=sqlite:///archive.db puts the file in the working folder: never chmod that."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    engine = make_engine(f"sqlite:///{shared / 'archive.db'}")
    await engine.dispose()
    assert mode(shared) == 0o755
    assert mode(shared / "archive.db") == 0o600


def test_the_key_files_folder_is_private_too(tmp_path: Path) -> None:
    """With PostgreSQL the generated key file is the only thing in the data folder."""
    key_file = tmp_path / "data" / "encryption.key"
    _keys, created = load_or_create_keys(None, key_file)
    assert created
    assert mode(key_file.parent) == 0o700 and mode(key_file) == 0o600
