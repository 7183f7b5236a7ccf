"""Visits in storage: who may log them, what a visit changes on its customer, and the history."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from storage import audit, customers, vault, visits
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import NotFound, Refused
from storage.models import (
    Attachment,
    AuditEntry,
    ChangeRecord,
    Customer,
    RecordStatus,
    Role,
    Staff,
    Team,
    Visit,
)
from storage.validation import Invalid

KEYRING = Keyring([bytes(range(32))])
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = "Asia/Shanghai"
CYCLES = {"A": 7, "B": 14, "C": 30, "D": 60}


@dataclass
class Company:
    li: Staff  # salesperson, East
    zhao: Staff  # salesperson, East
    boss: Staff  # manager, East
    west_boss: Staff  # manager, West
    admin: Staff
    li_customer: Customer  # class B, yellow
    zhao_customer: Customer


async def _company(sessions: SessionFactory) -> Company:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=east.id),
            Staff(telegram_id=4, display_name="West", role=Role.manager, team_id=west.id),
            Staff(telegram_id=5, display_name="Admin", role=Role.admin),
        ]
        session.add_all(people)
        await session.flush()
        li_customer = await customers.create_customer(
            session,
            keyring=KEYRING,
            actor=people[0],
            values={
                "kind": "company",
                "name": "Mingyuan",
                "customer_class": "B",
                "stage": "yellow",
            },
        )
        zhao_customer = await customers.create_customer(
            session, keyring=KEYRING, actor=people[1], values={"kind": "company", "name": "Other"}
        )
    return Company(*people, li_customer, zhao_customer)


async def _log(
    sessions: SessionFactory, actor: Staff, customer: Customer, **values: object
) -> Visit:
    async with unit_of_work(sessions) as session:
        return await visits.log_visit(
            session,
            keyring=KEYRING,
            actor=actor,
            customer_id=customer.id or 0,
            values={"kind": "on_site", **values},
            now=NOW,
            timezone=SHANGHAI,
            followup_cycles=CYCLES,
        )


async def test_a_visit_updates_its_customer_with_history_and_audit(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    visit = await _log(
        session_factory,
        company.li,
        company.li_customer,
        visited_at="2026-11-21T15:30+08:00",
        location={"latitude": 30.27, "longitude": 120.15, "accuracy": 12.5},
        purpose="Present the lathe",
        stage_change="red",
        attachments=[
            {"kind": "photo", "file_id": "p1", "unique": "u1"},
            {"kind": "voice", "file_id": "v1", "unique": "u2"},
        ],
    )
    assert visit.visited_at == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    assert visit.next_followup_on == date(2026, 12, 6)  # class B: 14 days after 11-22
    async with session_factory() as session:
        customer = await session.get(Customer, company.li_customer.id)
        assert customer is not None
        assert customer.last_visit_on == date(2026, 11, 21)
        assert customer.next_followup_on == date(2026, 12, 6)
        assert customer.stage == "red"
        assert customer.version == 2
        stored = (await session.exec(select(Visit))).one()
        assert (stored.latitude, stored.longitude, stored.accuracy_m) == (30.27, 120.15, 12.5)
        files = (await session.exec(select(Attachment).order_by(col(Attachment.id)))).all()
        assert [(a.kind, a.file_id, a.visit_id) for a in files] == [
            ("photo", "p1", visit.id),
            ("voice", "v1", visit.id),
        ]
        history = (await session.exec(select(ChangeRecord).order_by(col(ChangeRecord.id)))).all()
        assert [(h.entity, h.action) for h in history][-2:] == [
            ("visit", "create"),
            ("customer", "visit"),
        ]
        key = await vault.data_key(session, KEYRING, customer.id or 0)
        diff = vault.open_change(key, history[-1])
        assert diff == {
            "last_visit_on": [None, "2026-11-21"],
            "next_followup_on": [None, "2026-12-06"],
            "stage": ["yellow", "red"],
        }
        query = select(AuditEntry.action).order_by(col(AuditEntry.id))
        actions = (await session.exec(query)).all()
        assert actions[-2:] == ["visit.create", "customer.update"]
        assert (await audit.verify_chain(session)).ok


async def test_an_older_visit_does_not_move_the_last_visit_back(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    await _log(session_factory, company.li, company.li_customer, next_followup_on="2026-12-01")
    await _log(
        session_factory, company.li, company.li_customer, visited_at="2026-11-01T09:00+08:00"
    )
    async with session_factory() as session:
        customer = await session.get(Customer, company.li_customer.id)
        assert customer is not None
        assert customer.last_visit_on == date(2026, 11, 22)
        assert customer.next_followup_on == date(2026, 12, 6)  # the latest visit's default


async def test_a_stage_change_to_the_current_stage_is_no_change(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    visit = await _log(session_factory, company.li, company.li_customer, stage_change="yellow")
    assert visit.stage_change is None


async def test_who_may_log_a_visit(session_factory: SessionFactory) -> None:
    company = await _company(session_factory)
    await _log(session_factory, company.boss, company.li_customer)  # the team's manager
    await _log(session_factory, company.admin, company.li_customer)
    for outsider, customer in (
        (company.zhao, company.li_customer),  # a colleague's customer
        (company.west_boss, company.li_customer),  # another team's manager
        (company.li, company.zhao_customer),
    ):
        with pytest.raises(NotFound):
            await _log(session_factory, outsider, customer)
    async with session_factory() as session:
        assert len((await session.exec(select(Visit))).all()) == 2


async def test_a_refusal_caught_inside_the_unit_of_work_keeps_its_audit_entry(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    async with unit_of_work(session_factory) as session:
        with pytest.raises(NotFound):
            await visits.log_visit(
                session,
                keyring=KEYRING,
                actor=company.zhao,
                customer_id=company.li_customer.id or 0,
                values={"kind": "phone"},
                now=NOW,
                timezone=SHANGHAI,
                followup_cycles=CYCLES,
            )
    async with session_factory() as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).one()
        assert denied.actor_staff_id == company.zhao.id
        assert denied.entity_id == company.li_customer.id
        assert "visit.log" in (denied.detail or "")
        assert (await session.exec(select(Visit))).all() == []


async def test_archived_customers_and_bad_values_are_refused(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    with pytest.raises(Refused, match="visit_time"):
        await _log(
            session_factory,
            company.li,
            company.li_customer,
            visited_at=(NOW + timedelta(hours=2)).isoformat(),
        )
    with pytest.raises(Refused, match="incomplete"):
        await _log(session_factory, company.li, company.li_customer, kind="teleport")
    with pytest.raises(Refused, match="too_many"):
        await _log(
            session_factory,
            company.li,
            company.li_customer,
            attachments=[{"kind": "photo", "file_id": f"p{i}"} for i in range(21)],
        )
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, company.li_customer.id)
        assert customer is not None
        customer.status = RecordStatus.archived
        session.add(customer)
    with pytest.raises(Refused, match="archived"):
        await _log(session_factory, company.li, company.li_customer)


async def test_visits_are_listed_newest_first_a_page_at_a_time(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    for day in range(1, 8):
        await _log(
            session_factory,
            company.li,
            company.li_customer,
            visited_at=f"2026-11-{day:02d}T10:00+08:00",
            attachments=[{"kind": "photo", "file_id": f"p{day}"}] * (day % 3),
        )
    async with unit_of_work(session_factory) as session:
        first = await visits.visits_of(
            session, actor=company.boss, customer_id=company.li_customer.id or 0, page=0
        )
        last = await visits.visits_of(
            session, actor=company.li, customer_id=company.li_customer.id or 0, page=9
        )
        refused = await visits.visits_of(
            session, actor=company.zhao, customer_id=company.li_customer.id or 0, page=0
        )
    assert first is not None and last is not None and refused is None
    assert first.total == 7
    assert [e.visit.visited_at.day for e in first.entries] == [7, 6, 5, 4, 3]
    assert [e.attachments for e in first.entries] == [1, 0, 2, 1, 0]
    assert last.page == 1 and [e.visit.visited_at.day for e in last.entries] == [2, 1]
    assert {e.salesperson_name for e in first.entries} == {"Li"}


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("09:30", datetime(2026, 11, 22, 1, 30, tzinfo=UTC)),
        ("11-21 15:30", datetime(2026, 11, 21, 7, 30, tzinfo=UTC)),
        ("2026-11-21 8:05", datetime(2026, 11, 21, 0, 5, tzinfo=UTC)),
        ("11月21日 15：30", datetime(2026, 11, 21, 7, 30, tzinfo=UTC)),
        ("11月21日15:30", datetime(2026, 11, 21, 7, 30, tzinfo=UTC)),
        ("11-20", datetime(2026, 11, 20, 2, 0, tzinfo=UTC)),  # a day alone: at this time of day
    ],
)
def test_typed_moments(typed: str, expected: datetime) -> None:
    now = NOW.astimezone(ZoneInfo(SHANGHAI))
    assert visits.parse_moment(typed, now=now) == expected


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("yesterday-ish", "moment"),
        ("25:00", "moment"),
        ("2026-02-30 10:00", "moment"),
        ("12:30x", "moment"),
        ("23:00", "moment_future"),
        ("12-01", "moment_future"),
    ],
)
def test_bad_moments(typed: str, code: str) -> None:
    now = NOW.astimezone(ZoneInfo(SHANGHAI))
    with pytest.raises(Invalid) as raised:
        visits.parse_moment(typed, now=now)
    assert raised.value.code == code


async def test_visits_logged_at_once_all_count_on_the_customer(
    session_factory: SessionFactory,
) -> None:
    """Each save takes the customer's row: no update is lost, and the version counts them."""
    company = await _company(session_factory)
    await asyncio.gather(
        *(
            _log(session_factory, actor, company.li_customer, purpose=f"visit {n}")
            for n, actor in enumerate([company.li, company.boss, company.admin] * 3)
        )
    )
    async with session_factory() as session:
        customer = await session.get(Customer, company.li_customer.id)
        assert customer is not None and customer.version == 1 + 9
        assert len((await session.exec(select(Visit))).all()) == 9
        assert (await audit.verify_chain(session)).ok
