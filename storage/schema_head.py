"""Whether a database is already at the newest schema, without loading Alembic.

Loading Alembic and every migration script costs a process ~9 MB and ~0.4 s at each start,
only to find there is nothing to do (the usual case). The newest revision is read from the
migration files' text (`revision = ...`, `down_revision = ...`); when there is exactly one
head and the database's `alembic_version` is exactly it, the upgrade is skipped. Anything
else (several heads, no version table, an older or unknown revision) goes through Alembic.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from storage.db import make_engine

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision(?:: str)? = [\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.MULTILINE)
_NAME = re.compile(r"[\"']([^\"']+)[\"']")


def head_revision(versions: Path = VERSIONS_DIR) -> str | None:
    """The one revision no other revision follows, or None if there is not exactly one."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in versions.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision is None:
            return None  # a file this reader does not understand: let Alembic decide
        revisions.add(revision[1])
        down = _DOWN.search(source)
        if down is not None:
            followed.update(_NAME.findall(down[1]))
    heads = revisions - followed
    return heads.pop() if len(heads) == 1 else None


async def database_revisions(database_url: str) -> list[str] | None:
    """The revisions in the database's `alembic_version`; None when it has no such table."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    except (SQLAlchemyError, OSError):
        return None  # no version table yet (a new database), or unreadable: Alembic says
    finally:
        await engine.dispose()
    return sorted(row[0] for row in rows)


async def is_current(database_url: str) -> bool:
    """True when the database is at the single head revision (nothing to migrate)."""
    head = head_revision()
    if head is None:
        return False
    return await database_revisions(database_url) == [head]
