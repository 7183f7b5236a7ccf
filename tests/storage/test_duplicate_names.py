"""The kept team names stay bounded and never outlive the database's truth."""

from __future__ import annotations

import pytest

from storage import customers, duplicate_names
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Role, Staff, Team

KEY = bytes(range(32))


async def _team_with_customer(sessions: SessionFactory, keyring: Keyring, team: str, name: str):  # type: ignore[no-untyped-def]
    async with unit_of_work(sessions) as session:
        row = Team(name=team)
        session.add(row)
        await session.flush()
        staff = Staff(
            telegram_id=hash(team) % 10**9, display_name=team, role=Role.salesperson, team_id=row.id
        )
        session.add(staff)
        await session.flush()
        await customers.create_customer(
            session, keyring=keyring, actor=staff, values={"kind": "company", "name": name}
        )
    return row.id


async def _named(sessions: SessionFactory, keyring: Keyring, team_id: int, name: str) -> list:  # type: ignore[type-arg]
    async with unit_of_work(sessions) as session:
        return await customers.matches(session, keyring=keyring, team_id=team_id, name=name)


async def test_least_recently_checked_teams_are_dropped_beyond_the_bound(
    session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duplicate_names, "MAX_NAMES", 1)
    keyring = Keyring([KEY])
    east = await _team_with_customer(session_factory, keyring, "East", "钱塘精工机械有限公司")
    west = await _team_with_customer(session_factory, keyring, "West", "西溪远景贸易有限公司")
    assert await _named(session_factory, keyring, east, "钱塘精工机械")
    assert await _named(session_factory, keyring, west, "西溪远景贸易")
    kept = next(reversed(duplicate_names._DATABASES.values()))  # this test's database
    assert list(kept.teams) == [west]  # East was dropped, the team being checked stays
    assert await _named(session_factory, keyring, east, "钱塘精工机械")  # read again
    assert not await _named(session_factory, keyring, east, "西溪远景贸易")  # West's is not East's
    assert list(kept.teams) == [east]
