"""storage.reassign: who may give which customer to whom, and what the actor saw is what moves.

The flows' tests (tests/conversations/test_reassign.py) show it through the bot; here the rules
one by one, and many races of two managers at once on the locked rows (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from storage import customers, reassign
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import AuditEntry, Customer, ReassignPick, Role, Staff, Team
from storage.reassign import Skip

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
RACES = 10


@dataclass
class Company:
    li: Staff  # salesperson, East: owns the customers
    zhao: Staff  # salesperson, East
    wang: Staff  # salesperson, East
    chen: Staff  # manager, East
    qian: Staff  # manager, East
    wu: Staff  # salesperson, West
    admin: Staff
    gone: Staff  # salesperson, East, deactivated
    customers: list[Customer]


async def _company(sessions: SessionFactory, keyring: Keyring, count: int = 3) -> Company:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=3, display_name="Wang", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=4, display_name="Chen", role=Role.manager, team_id=east.id),
            Staff(telegram_id=5, display_name="Qian", role=Role.manager, team_id=east.id),
            Staff(telegram_id=6, display_name="Wu", role=Role.salesperson, team_id=west.id),
            Staff(telegram_id=7, display_name="Boss", role=Role.admin, team_id=None),
            Staff(
                telegram_id=8,
                display_name="Gone",
                role=Role.salesperson,
                team_id=east.id,
                active=False,
            ),
        ]
        session.add_all(people)
        await session.flush()
        made = [
            await customers.create_customer(
                session, keyring=keyring, actor=people[0], values={"kind": "company", "name": n}
            )
            for n in (f"Mingyuan {i}" for i in range(count))
        ]
    return Company(*people, made)


def _seen(company: Company, *indexes: int) -> dict[int, int]:
    return {company.customers[i].id or 0: company.li.id or 0 for i in indexes}


async def test_the_rules_of_a_reassignment(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    async with unit_of_work(session_factory) as write:
        west = (await write.exec(select(Team).where(Team.name == "West"))).one()
        ma = Staff(telegram_id=9, display_name="Ma", role=Role.manager, team_id=west.id)
        write.add(ma)
    async with session_factory() as session:
        for actor, to in (
            (company.chen, company.wu),  # another team's person
            (company.chen, company.admin),  # an admin takes no customers
            (company.chen, company.gone),  # nor does someone who left
            (company.li, company.zhao),  # a salesperson reassigns nothing
        ):
            with pytest.raises(Refused) as refused:
                await reassign.preview(
                    session, actor=actor, to_staff_id=to.id or 0, seen=_seen(company, 0)
                )
            assert refused.value.code == "successor"
        plan = await reassign.preview(
            session, actor=company.chen, to_staff_id=company.li.id or 0, seen=_seen(company, 0)
        )
        assert [s.reason for s in plan.skipped] == [Skip.already_theirs]
        stale = {company.customers[0].id or 0: company.zhao.id or 0}
        plan = await reassign.preview(
            session, actor=company.chen, to_staff_id=company.wang.id or 0, seen=stale
        )
        assert [s.reason for s in plan.skipped] == [Skip.changed_hands]
        # an admin gives an East customer to West's Wu
        plan = await reassign.preview(
            session, actor=company.admin, to_staff_id=company.wu.id or 0, seen=_seen(company, 0, 1)
        )
        assert len(plan.eligible) == 2 and plan.skipped == ()
        # the West salesperson's manager cannot see East's customers: gone, unnamed
        plan = await reassign.preview(
            session, actor=ma, to_staff_id=company.wu.id or 0, seen=_seen(company, 0)
        )
        assert [(s.reason, s.customer) for s in plan.skipped] == [(Skip.gone, None)]


async def test_an_admin_moves_the_customer_to_the_new_owners_team(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    async with unit_of_work(session_factory) as session:
        done = await reassign.reassign(
            session,
            keyring,
            actor=company.admin,
            to_staff_id=company.wu.id or 0,
            seen=_seen(company, 0),
        )
    assert [b.id for b in done.moved] == [company.customers[0].id]
    async with session_factory() as session:
        customer = await session.get(Customer, company.customers[0].id)
        assert customer is not None and customer.team_id == company.wu.team_id
        assert customer.owner_id == company.wu.id


async def test_a_selection_is_kept_toggled_and_bounded(
    session_factory: SessionFactory, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    company = await _company(session_factory, keyring)
    first, second, third = (c.id or 0 for c in company.customers)
    async with unit_of_work(session_factory) as session:
        assert await reassign.toggle(session, actor=company.chen, customer_id=first, now=NOW)
        assert await reassign.toggle(session, actor=company.chen, customer_id=second, now=NOW)
        assert not await reassign.toggle(session, actor=company.chen, customer_id=first, now=NOW)
    async with session_factory() as session:
        assert await reassign.picks(session, actor=company.chen) == {second: company.li.id}
    monkeypatch.setattr(reassign, "SELECTION_MAX", 1)
    async with unit_of_work(session_factory) as session:
        with pytest.raises(Refused) as refused:
            await reassign.toggle(session, actor=company.chen, customer_id=third, now=NOW)
    assert refused.value.code == "selection_full"
    for actor in (company.li, company.wu):
        async with unit_of_work(session_factory) as session:
            with pytest.raises(Refused):
                await reassign.toggle(session, actor=actor, customer_id=third, now=NOW)
    async with unit_of_work(session_factory) as session:
        done = await reassign.reassign(
            session,
            keyring,
            actor=company.chen,
            to_staff_id=company.zhao.id or 0,
            seen=await reassign.picks(session, actor=company.chen),
            selection=True,
        )
    assert [b.id for b in done.moved] == [second]
    async with session_factory() as session:
        assert (await session.exec(select(ReassignPick))).all() == []


async def test_two_managers_at_once_one_wins_every_time(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring, count=RACES)

    async def attempt(actor: Staff, to: Staff, customer_id: int) -> int:
        async with unit_of_work(session_factory) as session:
            done = await reassign.reassign(
                session,
                keyring,
                actor=actor,
                to_staff_id=to.id or 0,
                seen={customer_id: company.li.id or 0},
            )
        return len(done.moved)

    for customer in company.customers:
        results = await asyncio.gather(
            attempt(company.chen, company.zhao, customer.id or 0),
            attempt(company.qian, company.wang, customer.id or 0),
        )
        assert sorted(results) == [0, 1], results
        async with session_factory() as session:
            now = await session.get(Customer, customer.id)
            assert now is not None
            winner = company.zhao if results[0] else company.wang
            assert now.owner_id == winner.id
    async with session_factory() as session:
        entries = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.reassign"))
        ).all()
    assert len(entries) == RACES
