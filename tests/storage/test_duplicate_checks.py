"""The daily cap of duplicate look-ups holds when one person looks up many times at once."""

from __future__ import annotations

import asyncio
from datetime import date

from sqlmodel import select

from storage import customers
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, DuplicateCheckCount, Role, Staff, Team

KEY = bytes(range(32))
DAY = date(2026, 11, 22)
LIMIT = 5
AT_ONCE = 12


async def _seller(sessions: SessionFactory) -> Staff:
    async with unit_of_work(sessions) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        staff = Staff(telegram_id=1001, display_name="Li", role=Role.salesperson, team_id=team.id)
        session.add(staff)
        await session.flush()
    return staff


async def test_look_ups_at_once_are_each_counted_and_capped(
    session_factory: SessionFactory,
) -> None:
    keyring = Keyring([KEY])
    seller = await _seller(session_factory)
    async with unit_of_work(session_factory) as session:
        await customers.create_customer(
            session,
            keyring=keyring,
            actor=seller,
            values={"kind": "company", "name": "Own Co", "phones": ["+8613812345678"]},
        )

    async def look_up() -> customers.DuplicateCheck:
        async with unit_of_work(session_factory) as session:
            return await customers.duplicates(
                session,
                keyring=keyring,
                actor=seller,
                today=DAY,
                daily_limit=LIMIT,
                purpose="new",
                phones=["+8613812345678"],
            )

    results = await asyncio.gather(*(look_up() for _ in range(AT_ONCE)))
    assert sum(not r.capped for r in results) == LIMIT  # no race lets a sixth one through
    assert all(r.duplicates for r in results if not r.capped)
    assert all(not r.duplicates for r in results if r.capped)
    async with unit_of_work(session_factory) as session:
        [counted] = (await session.exec(select(DuplicateCheckCount))).all()
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert (counted.staff_id, counted.day, counted.count) == (seller.id, DAY, AT_ONCE)
    assert actions.count("customer.duplicate") == LIMIT
    assert actions.count("customer.duplicates_capped") == 1


async def test_nothing_to_look_up_is_not_counted(session_factory: SessionFactory) -> None:
    seller = await _seller(session_factory)
    async with unit_of_work(session_factory) as session:
        found = await customers.duplicates(
            session,
            keyring=Keyring([KEY]),
            actor=seller,
            today=DAY,
            daily_limit=LIMIT,
            purpose="new",
            phones=[],
        )
        assert found == customers.DuplicateCheck()
        assert (await session.exec(select(DuplicateCheckCount))).all() == []
