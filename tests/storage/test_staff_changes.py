"""Changing staff (storage.staff): the rules people expect, and of two admins at once one wins.

Run on SQLite and, with TEST_DATABASE_URL, on PostgreSQL: the active admins and the person are
locked (FOR UPDATE; BEGIN IMMEDIATE on SQLite) and the version names what the change was decided
on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from storage import staff as staff_store
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import AuditEntry, Draft, Role, Staff, Team

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


@dataclass
class Company:
    boss: Staff  # admin
    chen: Staff  # admin
    zhou: Staff  # manager, East
    li: Staff  # salesperson, East
    east: Team
    west: Team


@pytest.fixture
async def company(session_factory: SessionFactory) -> Company:
    async with unit_of_work(session_factory) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Boss", role=Role.admin),
            Staff(telegram_id=2, display_name="Chen", role=Role.admin),
            Staff(telegram_id=3, display_name="Zhou", role=Role.manager, team_id=east.id),
            Staff(telegram_id=4, display_name="Li", role=Role.salesperson, team_id=east.id),
        ]
        session.add_all(people)
        await session.flush()
    return Company(*people, east=east, west=west)


async def _fresh(sessions: SessionFactory, staff_id: int | None) -> Staff:
    async with unit_of_work(sessions) as session:
        staff = await session.get(Staff, staff_id)
    assert staff is not None
    return staff


async def _refused(run: object) -> str:
    with pytest.raises(Refused) as refused:
        await run  # type: ignore[misc]
    return refused.value.code


async def test_two_admins_changing_one_person_at_once_one_wins(
    session_factory: SessionFactory, company: Company
) -> None:
    async def deactivate() -> object:
        async with unit_of_work(session_factory) as session:
            return await staff_store.deactivate(
                session, actor=company.boss, staff_id=company.li.id or 0, version=1
            )

    async def move() -> object:
        async with unit_of_work(session_factory) as session:
            return await staff_store.move_to_team(
                session,
                actor=company.chen,
                staff_id=company.li.id or 0,
                team_id=company.west.id or 0,
                version=1,
            )

    results = await asyncio.gather(deactivate(), move(), return_exceptions=True)
    refusals = [r for r in results if isinstance(r, Refused)]
    assert [r.code for r in refusals] == ["stale"], results
    li = await _fresh(session_factory, company.li.id)
    assert li.version == 2
    assert (li.active, li.team_id) in ((False, company.east.id), (True, company.west.id))


async def test_two_admins_deactivating_each_other_at_once_leave_one_admin(
    session_factory: SessionFactory, company: Company
) -> None:
    async def deactivate(actor: Staff, target: Staff) -> object:
        async with unit_of_work(session_factory) as session:
            return await staff_store.deactivate(session, actor=actor, staff_id=target.id or 0)

    results = await asyncio.gather(
        deactivate(company.boss, company.chen),
        deactivate(company.chen, company.boss),
        return_exceptions=True,
    )
    refusals = [r for r in results if isinstance(r, Refused)]
    assert len(refusals) == 1 and refusals[0].code in ("not_allowed", "last_admin"), results
    admins = [await _fresh(session_factory, s.id) for s in (company.boss, company.chen)]
    assert sorted(a.active for a in admins) == [False, True]


async def test_the_last_active_admin_is_neither_deactivated_nor_demoted(
    session_factory: SessionFactory, company: Company
) -> None:
    async with unit_of_work(session_factory) as session:
        await staff_store.deactivate(session, actor=company.boss, staff_id=company.chen.id or 0)
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.deactivate(session, actor=None, staff_id=company.boss.id or 0)
        )
    assert code == "last_admin"
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.change_role(
                session,
                actor=None,
                staff_id=company.boss.id or 0,
                role=Role.manager,
                version=None,
                team_id=company.east.id,
            )
        )
    assert code == "last_admin"
    assert (await _fresh(session_factory, company.boss.id)).role == Role.admin


async def test_nobody_deactivates_or_demotes_themselves(
    session_factory: SessionFactory, company: Company
) -> None:
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.deactivate(session, actor=company.boss, staff_id=company.boss.id or 0)
        )
    assert code == "self"
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.change_role(
                session,
                actor=company.boss,
                staff_id=company.boss.id or 0,
                role=Role.manager,
                version=None,
                team_id=company.east.id,
            )
        )
    assert code == "self"


async def test_only_active_admins_change_staff(
    session_factory: SessionFactory, company: Company
) -> None:
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.deactivate(session, actor=company.zhou, staff_id=company.li.id or 0)
        )
    assert code == "not_allowed"
    async with unit_of_work(session_factory) as session:
        await staff_store.deactivate(session, actor=company.boss, staff_id=company.chen.id or 0)
    # Chen's object still says "active admin"; the database does not
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.deactivate(session, actor=company.chen, staff_id=company.li.id or 0)
        )
    assert code == "not_allowed"
    async with unit_of_work(session_factory) as session:
        code = await _refused(staff_store.create_team(session, actor=company.zhou, name="North"))
    assert code == "not_allowed"


async def test_a_role_that_needs_a_team_gets_one(
    session_factory: SessionFactory, company: Company
) -> None:
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.change_role(
                session,
                actor=company.boss,
                staff_id=company.chen.id or 0,
                role=Role.salesperson,
                version=1,
            )
        )
    assert code == "team_required"
    async with unit_of_work(session_factory) as session:
        done = await staff_store.change_role(
            session,
            actor=company.boss,
            staff_id=company.chen.id or 0,
            role=Role.salesperson,
            version=1,
            team_id=company.west.id,
        )
    assert (done.staff.role, done.staff.team_id, done.staff.version) == (
        Role.salesperson,
        company.west.id,
        2,
    )
    assert done.handover is None  # an admin without records: nothing to hand over


async def test_unchanged_inactive_and_unknown_are_refused(
    session_factory: SessionFactory, company: Company
) -> None:
    li_id = company.li.id or 0
    async with unit_of_work(session_factory) as session:
        assert (
            await _refused(
                staff_store.move_to_team(
                    session, actor=None, staff_id=li_id, team_id=company.east.id or 0, version=None
                )
            )
            == "unchanged"
        )
    async with unit_of_work(session_factory) as session:
        assert (
            await _refused(
                staff_store.change_role(
                    session, actor=None, staff_id=li_id, role="boss", version=None
                )
            )
            == "invalid_role"
        )
    async with unit_of_work(session_factory) as session:
        assert (
            await _refused(
                staff_store.move_to_team(
                    session, actor=None, staff_id=li_id, team_id=9999, version=None
                )
            )
            == "team_not_found"
        )
    async with unit_of_work(session_factory) as session:
        session.add(Draft(staff_id=li_id, flow="new", sealed=b"x", token=5))
    async with unit_of_work(session_factory) as session:
        await staff_store.deactivate(session, actor=None, staff_id=li_id)
    async with unit_of_work(session_factory) as session:
        assert (await session.exec(select(Draft))).first() is None
        assert (
            await _refused(staff_store.deactivate(session, actor=None, staff_id=li_id))
            == "already_inactive"
        )
    async with unit_of_work(session_factory) as session:
        assert (
            await _refused(
                staff_store.move_to_team(
                    session, actor=None, staff_id=li_id, team_id=company.west.id or 0, version=None
                )
            )
            == "inactive"
        )
    async with unit_of_work(session_factory) as session:
        assert (
            await _refused(staff_store.deactivate(session, actor=None, staff_id=999_999))
            == "not_found"
        )


async def test_every_change_is_audited_without_personal_data(
    session_factory: SessionFactory, company: Company
) -> None:
    li_id = company.li.id or 0
    async with unit_of_work(session_factory) as session:
        await staff_store.move_to_team(
            session, actor=company.boss, staff_id=li_id, team_id=company.west.id or 0, version=1
        )
    async with unit_of_work(session_factory) as session:
        await staff_store.change_role(
            session, actor=company.boss, staff_id=li_id, role=Role.manager, version=2
        )
    async with unit_of_work(session_factory) as session:
        await staff_store.deactivate(session, actor=company.boss, staff_id=li_id, version=3)
    async with unit_of_work(session_factory) as session:
        await staff_store.reactivate(session, actor=None, staff_id=li_id, version=4)
    async with unit_of_work(session_factory) as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.entity == "staff"))).all()
    actions = [e.action for e in entries]
    assert actions == ["staff.team", "staff.role", "staff.deactivate", "staff.reactivate"]
    assert all("Li" not in (e.detail or "") for e in entries)
    assert entries[0].actor_staff_id == company.boss.id and entries[3].actor_staff_id is None


async def test_team_names_are_clean_unique_and_bounded(
    session_factory: SessionFactory, company: Company
) -> None:
    assert staff_store.clean_team_name("  Nor\x00th \x1b  Sales\n") == "North Sales"
    for bad in ("", " \x00\x07 ", "x" * 101):
        with pytest.raises(Refused) as refused:
            staff_store.clean_team_name(bad)
        assert refused.value.code == "team_name"
    assert staff_store.clean_team_name("团" * 100) == "团" * 100
    async with unit_of_work(session_factory) as session:
        code = await _refused(staff_store.create_team(session, actor=None, name="EAST"))
    assert code == "team_exists"
    async with unit_of_work(session_factory) as session:
        code = await _refused(
            staff_store.rename_team(
                session, actor=company.boss, team_id=company.west.id or 0, name="east"
            )
        )
    assert code == "team_exists"


async def test_two_admins_creating_one_team_at_once_make_one(
    session_factory: SessionFactory, company: Company
) -> None:
    async def create(actor: Staff) -> object:
        async with unit_of_work(session_factory) as session:
            return await staff_store.create_team(session, actor=actor, name="North")

    results = await asyncio.gather(
        create(company.boss), create(company.chen), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Refused", "Team"], results
    async with unit_of_work(session_factory) as session:
        names = [t.name for t in await staff_store.teams(session)]
    assert names == ["East", "North", "West"]


async def test_being_seen_is_written_once_an_hour_and_is_no_change(
    session_factory: SessionFactory, company: Company
) -> None:
    li_id = company.li.id or 0
    async with unit_of_work(session_factory) as session:
        assert await staff_store.note_seen(session, staff_id=li_id, now=NOW)
    async with unit_of_work(session_factory) as session:
        assert not await staff_store.note_seen(
            session, staff_id=li_id, now=NOW + timedelta(minutes=30)
        )
    async with unit_of_work(session_factory) as session:
        assert await staff_store.note_seen(session, staff_id=li_id, now=NOW + timedelta(hours=1))
    li = await _fresh(session_factory, li_id)
    assert (li.last_seen_at, li.version) == (NOW + timedelta(hours=1), 1)


async def test_a_manager_reads_the_staff_of_their_team_only(
    session_factory: SessionFactory, company: Company
) -> None:
    async with unit_of_work(session_factory) as session:
        seen = await staff_store.staff_page(session, actor=company.zhou)
        assert [s.display_name for s in seen.entries] == ["Li", "Zhou"]
        every = await staff_store.staff_page(session, actor=company.boss)
        assert [s.display_name for s in every.entries] == ["Li", "Zhou", "Boss", "Chen"]
        assert (await staff_store.staff_page(session, actor=company.li)).total == 0
        with pytest.raises(Refused):
            await staff_store.person_for(session, actor=company.zhou, staff_id=company.boss.id or 0)
