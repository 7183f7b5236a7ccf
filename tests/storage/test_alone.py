"""storage.db.alone: a lone statement gives rows and a row count in the same shape on either
branch. SQLite takes the ordinary unit; PostgreSQL takes autocommit. The ordinary branch once
used SQLModel's `exec`, whose scalars have no row count, so the gate failed closed there."""

from __future__ import annotations

from sqlalchemy import select, update

from storage.db import SessionFactory, alone, unit_of_work
from storage.models import Team

_NAME = select(Team.name, Team.id).where(Team.id == 1)
_RENAME = update(Team).where(Team.id == 1).values(name="West")


async def test_a_read_and_a_write_alone_give_rows_and_counts(
    session_factory: SessionFactory,
) -> None:
    async with unit_of_work(session_factory) as session:
        session.add(Team(id=1, name="East"))

    read = await alone(session_factory, _NAME, {}, reads=True)
    assert read.scalar() == "East"
    assert tuple(read.first()) == ("East", 1)

    wrote = await alone(session_factory, _RENAME, {}, reads=False)
    assert wrote.rowcount == 1 and wrote.rows == []
    assert (await alone(session_factory, _NAME, {}, reads=True)).scalar() == "West"


async def test_a_read_of_nothing_is_empty(session_factory: SessionFactory) -> None:
    nothing = await alone(session_factory, _NAME, {}, reads=True)
    assert nothing.first() is None and nothing.scalar() is None
