"""Complaints in storage: numbers, due times, handlers, and who may move a complaint on."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from storage import audit, complaints, customers, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import NotFound, Refused
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    NumberSequence,
    Review,
    Role,
    Staff,
    Team,
)

KEYRING = Keyring([bytes(range(32))])
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}
NUMBER = re.compile(r"^TS-2026-(\d{6})$")


@dataclass
class Company:
    li: Staff  # salesperson, East; owns the customer
    zhao: Staff  # salesperson, East
    boss: Staff  # manager, East
    west: Staff  # salesperson, West
    west_boss: Staff  # manager, West
    admin: Staff
    customer: Customer


async def _company(sessions: SessionFactory) -> Company:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=east.id),
            Staff(telegram_id=4, display_name="Wu", role=Role.salesperson, team_id=west.id),
            Staff(telegram_id=5, display_name="West", role=Role.manager, team_id=west.id),
            Staff(telegram_id=6, display_name="Admin", role=Role.admin),
        ]
        session.add_all(people)
        await session.flush()
        customer = await customers.create_customer(
            session,
            keyring=KEYRING,
            actor=people[0],
            values={"kind": "company", "name": "Mingyuan"},
        )
    return Company(*people, customer)


async def _log(
    sessions: SessionFactory,
    actor: Staff,
    customer: Customer,
    *,
    severity: str = "high",
    handler: Staff | None = None,
    now: datetime = NOW,
) -> Complaint:
    async with unit_of_work(sessions) as session:
        return await complaints.log_complaint(
            session,
            keyring=KEYRING,
            actor=actor,
            customer_id=customer.id or 0,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": severity,
                "description": "Three machines arrived two weeks late",
                "handler_id": handler.id if handler else None,
            },
            now=now,
            due_hours=DUE_HOURS,
        )


async def test_complaint_numbers_are_unique_under_concurrent_creation(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    made = await asyncio.gather(
        *(
            _log(
                session_factory, (company.li, company.boss, company.admin)[i % 3], company.customer
            )
            for i in range(24)
        )
    )
    numbers = sorted(c.complaint_no for c in made)
    assert numbers == [f"TS-2026-{n:06d}" for n in range(1, 25)]
    async with session_factory() as session:
        stored = (await session.exec(select(Complaint.complaint_no))).all()
        assert sorted(stored) == numbers
        sequence = await session.get(NumberSequence, "TS:2026")
        assert sequence is not None and sequence.value == 24
        assert (await audit.verify_chain(session)).ok


async def test_a_failed_creation_never_reuses_a_number_already_given(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    first = await _log(session_factory, company.li, company.customer)
    with pytest.raises(RuntimeError):
        async with unit_of_work(session_factory) as session:
            await complaints.log_complaint(
                session,
                keyring=KEYRING,
                actor=company.li,
                customer_id=company.customer.id or 0,
                values={"complaint_type": "other", "severity": "low", "description": "x"},
                now=NOW,
                due_hours=DUE_HOURS,
            )
            raise RuntimeError("rolled back")
    second = await _log(session_factory, company.li, company.customer)
    assert [first.complaint_no, second.complaint_no] == ["TS-2026-000001", "TS-2026-000002"]


@pytest.mark.parametrize(
    ("severity", "hours"), [("critical", 24), ("high", 72), ("medium", 168), ("low", 336)]
)
async def test_due_time_follows_severity(
    session_factory: SessionFactory, severity: str, hours: int
) -> None:
    company = await _company(session_factory)
    complaint = await _log(session_factory, company.li, company.customer, severity=severity)
    assert complaint.received_at == NOW
    assert complaint.due_at == NOW + timedelta(hours=hours)
    assert complaint.status == "open"


async def test_the_handler_defaults_to_the_owner_and_only_managers_choose_another(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    by_owner = await _log(session_factory, company.li, company.customer)
    assert by_owner.handler_id == company.li.id
    by_manager = await _log(session_factory, company.boss, company.customer, handler=company.zhao)
    assert by_manager.handler_id == company.zhao.id
    with pytest.raises(Refused, match="not_allowed"):
        await _log(session_factory, company.li, company.customer, handler=company.zhao)
    with pytest.raises(Refused, match="complaint_handler"):  # not in the customer's team
        await _log(session_factory, company.boss, company.customer, handler=company.west)
    with pytest.raises(NotFound):
        await _log(session_factory, company.west_boss, company.customer)
    async with unit_of_work(session_factory) as session:
        boss_sees = await complaints.handler_candidates(
            session, actor=company.boss, customer_id=company.customer.id or 0
        )
        owner_sees = await complaints.handler_candidates(
            session, actor=company.li, customer_id=company.customer.id or 0
        )
    assert [s.display_name for s in boss_sees] == ["Li", "Boss", "Zhao"]
    assert [s.display_name for s in owner_sees] == ["Li"]


async def _take(sessions: SessionFactory, actor: Staff, complaint: Complaint) -> Complaint:
    async with unit_of_work(sessions) as session:
        return await complaints.start_progress(
            session, keyring=KEYRING, actor=actor, complaint_id=complaint.id or 0, now=NOW
        )


async def _resolve(
    sessions: SessionFactory, actor: Staff, complaint: Complaint
) -> complaints.Resolution:
    async with unit_of_work(sessions) as session:
        return await complaints.resolve(
            session,
            keyring=KEYRING,
            actor=actor,
            complaint_id=complaint.id or 0,
            resolution="Replaced the parts",
            feedback="Customer satisfied",
            feedback_at=NOW,
            now=NOW + timedelta(hours=1),
        )


async def test_handler_moves_the_complaint_on_and_the_resolution_awaits_review(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    complaint = await _log(session_factory, company.boss, company.customer, handler=company.zhao)
    # Zhao handles a complaint of a customer he may not otherwise see
    async with unit_of_work(session_factory) as session:
        seen = await complaints.visible_complaint(
            session, actor=company.zhao, complaint_id=complaint.id or 0, purpose="test"
        )
        assert seen is not None and seen.handler is not None and seen.handler.id == company.zhao.id
        assert complaints.allowed_actions(company.zhao, seen.complaint, seen.customer) == [
            "take",
            "resolve",
        ]
        assert complaints.allowed_actions(company.boss, seen.complaint, seen.customer) == [
            "take",
            "resolve",
            "assign",
        ]
    taken = await _take(session_factory, company.zhao, complaint)
    assert taken.status == "in_progress"
    with pytest.raises(Refused, match="complaint_state"):
        await _take(session_factory, company.boss, complaint)
    result = await _resolve(session_factory, company.zhao, complaint)
    assert result.complaint.status == "resolved"
    review = result.review
    assert (review.kind, review.status) == ("complaint_resolution", "pending")
    assert (review.complaint_id, review.customer_id) == (complaint.id, company.customer.id)
    assert (review.team_id, review.submitted_by) == (company.customer.team_id, company.zhao.id)
    with pytest.raises(Refused, match="complaint_state"):
        await _resolve(session_factory, company.boss, complaint)
    async with session_factory() as session:
        stored = await session.get(Complaint, complaint.id)
        assert stored is not None
        assert (stored.resolution, stored.feedback) == ("Replaced the parts", "Customer satisfied")
        assert stored.feedback_at == NOW and stored.version == 3
        assert len((await session.exec(select(Review))).all()) == 2  # the customer's, this one
        history = (
            await session.exec(
                select(ChangeRecord)
                .where(ChangeRecord.entity == "complaint")
                .order_by(col(ChangeRecord.id))
            )
        ).all()
        assert [h.action for h in history] == ["create", "in_progress", "resolve"]
        assert history[-1].review_id == review.id
        key = await vault.data_key(session, KEYRING, company.customer.id or 0)
        diff = vault.open_change(key, history[-1])
        assert diff["status"] == ["in_progress", "resolved"]
        actions = (await session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id)))).all()
        assert actions[-3:] == ["complaint.in_progress", "complaint.resolve", "review.submit"]


async def test_the_wrong_person_is_refused_and_audited(session_factory: SessionFactory) -> None:
    company = await _company(session_factory)
    complaint = await _log(session_factory, company.li, company.customer)  # handler: Li
    for outsider, error in (
        (company.zhao, Refused),  # same team, neither handler nor manager: cannot see it
        (company.west_boss, NotFound),
        (company.west, NotFound),
    ):
        async with unit_of_work(session_factory) as session:
            with pytest.raises(error):
                await complaints.start_progress(
                    session,
                    keyring=KEYRING,
                    actor=outsider,
                    complaint_id=complaint.id or 0,
                    now=NOW,
                )
    async with unit_of_work(session_factory) as session:
        with pytest.raises(Refused, match="not_allowed"):  # the handler may not reassign
            await complaints.reassign(
                session,
                keyring=KEYRING,
                actor=company.li,
                complaint_id=complaint.id or 0,
                handler_id=company.zhao.id or 0,
                now=NOW,
            )
    async with session_factory() as session:
        denied = (
            await session.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "access.denied")
                .order_by(col(AuditEntry.id))
            )
        ).all()
        assert [(d.actor_staff_id, d.entity, d.entity_id) for d in denied] == [
            (company.zhao.id, "complaint", complaint.id),
            (company.west_boss.id, "complaint", complaint.id),
            (company.west.id, "complaint", complaint.id),
            (company.li.id, "complaint", complaint.id),
        ]
        stored = await session.get(Complaint, complaint.id)
        assert stored is not None and stored.status == "open" and stored.handler_id == company.li.id


async def test_a_manager_reassigns_and_the_review_closes_or_reopens(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    complaint = await _log(session_factory, company.li, company.customer)
    async with unit_of_work(session_factory) as session:
        moved = await complaints.reassign(
            session,
            keyring=KEYRING,
            actor=company.boss,
            complaint_id=complaint.id or 0,
            handler_id=company.zhao.id or 0,
            now=NOW,
        )
    assert moved.handler_id == company.zhao.id
    first = await _resolve(session_factory, company.zhao, complaint)
    async with unit_of_work(session_factory) as session:
        reopened = await complaints.decide_resolution(
            session,
            keyring=KEYRING,
            actor=company.boss,
            complaint_id=complaint.id or 0,
            review_id=first.review.id or 0,
            approved=False,
            now=NOW,
        )
    assert reopened.status == "reopened"
    second = await _resolve(session_factory, company.zhao, complaint)
    async with unit_of_work(session_factory) as session:
        with pytest.raises(Refused, match="not_allowed"):
            await complaints.decide_resolution(
                session,
                keyring=KEYRING,
                actor=company.zhao,
                complaint_id=complaint.id or 0,
                review_id=second.review.id or 0,
                approved=True,
                now=NOW,
            )
    async with unit_of_work(session_factory) as session:
        closed = await complaints.decide_resolution(
            session,
            keyring=KEYRING,
            actor=company.boss,
            complaint_id=complaint.id or 0,
            review_id=second.review.id or 0,
            approved=True,
            now=NOW,
        )
    assert (closed.status, closed.approver_id, closed.closed_at) == ("closed", company.boss.id, NOW)
    async with unit_of_work(session_factory) as session:
        page = await complaints.complaints_of(
            session, actor=company.li, customer_id=company.customer.id or 0, page=0
        )
        hidden = await complaints.complaints_of(
            session, actor=company.west_boss, customer_id=company.customer.id or 0, page=0
        )
    assert page is not None and hidden is None
    assert [c.status for c in page.complaints] == ["closed"]


async def test_two_people_resolving_at_once_make_exactly_one_resolution(
    session_factory: SessionFactory,
) -> None:
    company = await _company(session_factory)
    complaint = await _log(session_factory, company.li, company.customer)
    outcomes = await asyncio.gather(
        *(_resolve(session_factory, actor, complaint) for actor in (company.li, company.boss)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, complaints.Resolution)]
    lost = [o for o in outcomes if isinstance(o, Refused)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].code == "complaint_state"
    async with session_factory() as session:
        pending = (
            await session.exec(select(Review).where(Review.kind == "complaint_resolution"))
        ).all()
        assert [r.id for r in pending] == [won[0].review.id]
