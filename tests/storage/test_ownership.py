"""Customers changing hands (storage.ownership): everything that follows an owner moves with the
customer, in one transaction; history and audit say so; a condition that no longer holds moves
nothing, which is how one of two claimants wins."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from storage import audit, complaints, customers, ownership, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    Reminder,
    ReminderStatus,
    Review,
    ReviewStatus,
    Role,
    Staff,
    Team,
    Transfer,
)
from storage.reminders.planning import dedup_key
from storage.types import utcnow

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}


@dataclass
class Company:
    li: Staff  # salesperson, East: owns the customers
    zhao: Staff  # salesperson, East
    boss: Staff  # manager, East
    wu: Staff  # salesperson, West
    customers: list[Customer]
    complaint: Complaint


async def _company(sessions: SessionFactory, keyring: Keyring, count: int = 3) -> Company:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=east.id),
            Staff(telegram_id=4, display_name="Wu", role=Role.salesperson, team_id=west.id),
        ]
        session.add_all(people)
        await session.flush()
        made = [
            await customers.create_customer(
                session, keyring=keyring, actor=people[0], values={"kind": "company", "name": n}
            )
            for n in (f"Mingyuan {i}" for i in range(count))
        ]
        complaint = await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=people[0],
            customer_id=made[0].id or 0,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": "high",
                "description": "late",
                "handler_id": people[0].id,
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
        for subject_type, subject_id, kind in (
            ("customer", made[0].id, "followup"),
            ("complaint", complaint.id, "complaint_soon"),
            ("customer", made[1].id, "stale"),
        ):
            session.add(
                Reminder(
                    dedup_key=dedup_key(kind, subject_type, subject_id, people[0].id or 0, "p"),
                    kind=kind,
                    subject_type=subject_type,
                    subject_id=subject_id,
                    recipient_id=people[0].id,
                    due_at=utcnow() + timedelta(days=1),
                )
            )
        # Zhao already has a stale reminder for the second customer: Li's is cancelled, not doubled
        session.add(
            Reminder(
                dedup_key=dedup_key("stale", "customer", made[1].id, people[1].id or 0, "p"),
                kind="stale",
                subject_type="customer",
                subject_id=made[1].id,
                recipient_id=people[1].id,
                due_at=utcnow() + timedelta(days=1),
            )
        )
    return Company(*people, made, complaint)


async def test_a_move_takes_complaints_reminders_and_reviews_along(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    ids = [c.id or 0 for c in company.customers]
    async with unit_of_work(session_factory) as session:
        moved = await ownership.move_customers(
            session,
            keyring,
            customer_ids=ids,
            to_staff=company.zhao,
            actor_id=company.boss.id,
            transfer=Transfer.handover,
        )
    assert moved.customers == 3 and moved.complaints == 1 and moved.reminders == 3
    assert moved.reviews == 3  # each new customer's pending review
    async with session_factory() as session:
        owners = await session.exec(select(Customer.owner_id).where(col(Customer.id).in_(ids)))
        assert set(owners.all()) == {company.zhao.id}
        complaint = await session.get(Complaint, company.complaint.id)
        assert complaint is not None and complaint.handler_id == company.zhao.id
        reviews = (await session.exec(select(Review))).all()
        assert {r.submitted_by for r in reviews if r.status == ReviewStatus.pending} == {
            company.zhao.id
        }
        reminders = (await session.exec(select(Reminder).order_by(col(Reminder.id)))).all()
        assert [(r.recipient_id, r.status) for r in reminders] == [
            (company.zhao.id, ReminderStatus.pending),
            (company.zhao.id, ReminderStatus.pending),
            (company.li.id, ReminderStatus.cancelled),
            (company.zhao.id, ReminderStatus.pending),
        ]
        assert reminders[0].dedup_key.split(":")[3] == str(company.zhao.id)
        history = (
            await session.exec(select(ChangeRecord).where(ChangeRecord.action == Transfer.handover))
        ).all()
        assert len(history) == 4  # three customers and the complaint
        first = next(h for h in history if h.entity == "customer" and h.entity_id == ids[0])
        key = await vault.data_key(session, keyring, ids[0])
        assert vault.open_change(key, first) == {"owner": ["Li", "Zhao"]}
        entry = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.handover"))
        ).one()
        assert entry.actor_staff_id == company.boss.id
        assert (await audit.verify_chain(session)).ok


async def test_a_move_to_another_team_takes_the_customer_and_its_review_there(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring, count=2)
    customer_id = company.customers[0].id or 0
    async with unit_of_work(session_factory) as session:
        await ownership.move_customers(
            session,
            keyring,
            customer_ids=[customer_id],
            to_staff=company.wu,
            actor_id=None,
            transfer=Transfer.reassign,
        )
    async with session_factory() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None and customer.team_id == company.wu.team_id
        review = (await session.exec(select(Review).where(Review.customer_id == customer_id))).one()
        assert review.team_id == company.wu.team_id
        other = (await session.exec(select(Review).where(Review.customer_id != customer_id))).one()
        assert other.team_id == company.li.team_id  # the customer left behind stays


async def test_a_condition_that_no_longer_holds_moves_nothing(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring, count=2)
    customer_id = company.customers[0].id or 0
    async with unit_of_work(session_factory) as session:
        await session.exec(
            Customer.__table__.update()  # type: ignore[attr-defined]
            .where(Customer.__table__.c.id == customer_id)  # type: ignore[attr-defined]
            .values(pooled_at=NOW)
        )

    async def claim(who: Staff) -> int:
        async with unit_of_work(session_factory) as session:
            moved = await ownership.move_customers(
                session,
                keyring,
                customer_ids=[customer_id],
                to_staff=who,
                actor_id=who.id,
                transfer=Transfer.pool_claim,
                only_if=[col(Customer.pooled_at).is_not(None)],
            )
        return moved.customers

    results = await asyncio.gather(claim(company.zhao), claim(company.boss))
    assert sorted(results) == [0, 1]
    async with session_factory() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None and customer.pooled_at is None
        assert customer.claimed_at is not None
        winner = company.zhao if results[0] else company.boss
        assert customer.owner_id == winner.id


async def test_complaints_move_on_their_own(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring, count=2)
    async with unit_of_work(session_factory) as session:
        moved = await ownership.move_complaints(
            session,
            keyring,
            complaint_ids=[company.complaint.id or 0],
            to_staff=company.boss,
            actor_id=None,
            transfer=Transfer.handover,
        )
    assert moved.complaints == 1 and moved.reminders == 1
    async with session_factory() as session:
        complaint = await session.get(Complaint, company.complaint.id)
        assert complaint is not None and complaint.handler_id == company.boss.id
        customer = await session.get(Customer, company.customers[0].id)
        assert customer is not None and customer.owner_id == company.li.id
