"""Starting at the newest schema skips Alembic; anything else still migrates."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot import preflight
from storage import schema_head
from storage.db import make_engine
from storage.migrate import alembic_config, upgrade_database


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert schema_head.head_revision() == script.get_current_head()


def test_two_heads_or_an_unreadable_file_give_no_head(tmp_path: Path) -> None:
    (tmp_path / "0001_a.py").write_text('revision = "0001_a"\ndown_revision = None\n')
    (tmp_path / "0002_b.py").write_text('revision = "0002_b"\ndown_revision = "0001_a"\n')
    assert schema_head.head_revision(tmp_path) == "0002_b"
    (tmp_path / "0003_c.py").write_text('revision = "0003_c"\ndown_revision = "0001_a"\n')
    assert schema_head.head_revision(tmp_path) is None  # 0002_b and 0003_c
    (tmp_path / "0003_c.py").write_text('revision = "0003_c"\ndown_revision = ("0002_b",)\n')
    assert schema_head.head_revision(tmp_path) == "0003_c"
    (tmp_path / "0004_d.py").write_text("REVISION = compute()\n")
    assert schema_head.head_revision(tmp_path) is None


async def _version(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


async def test_a_new_or_older_database_is_not_current_and_gets_migrated(
    database_url: str,
) -> None:
    assert not await schema_head.is_current(database_url)  # no schema at all
    await upgrade_database(database_url, "0014_review_ux")
    assert not await schema_head.is_current(database_url)
    await preflight.migrate(database_url)  # the bot's start: migrates the rest
    assert await _version(database_url) == [schema_head.head_revision()]
    assert await schema_head.is_current(database_url)
    await preflight.migrate(database_url)  # at head: nothing to do, nothing breaks
    assert await _version(database_url) == [schema_head.head_revision()]
