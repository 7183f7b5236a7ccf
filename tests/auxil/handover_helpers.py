"""A company where someone leaves: Li holds customers of every state, complaints (on her own
and on Zhao's customers), pending reviews, reminders (one snoozed) and a draft; Zhao and Qian
stay in East, Boss manages it, Wu works in West. `leave` deactivates Li and opens her
hand-over, as storage.staff will (helper "staff" wires that to /staff)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from storage import complaints, drafts
from storage import handover as handovers
from storage import staff as staff_store
from storage.db import SessionFactory, reading, unit_of_work
from storage.drafts import DraftMode, DraftState
from storage.models import (
    Complaint,
    Customer,
    Reminder,
    ReminderStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)
from storage.reminders.planning import dedup_key
from storage.types import utcnow
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.world import NOW, World

DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}
NAMES = ("明远机械", "恒通钢铁", "明远贸易")


@dataclass
class Leaving:
    li: Person
    zhao: Person
    qian: Person
    boss: Person
    wu: Person
    li_id: int
    zhao_id: int
    qian_id: int
    customers: list[int]  # Li's: pending, approved with a follow-up, archived
    zhao_customer: int
    complaints: list[int]  # on Li's first customer, and on Zhao's customer (both Li handles)
    reminders: list[int]
    review_on_zhaos: int  # a pending review Li submitted about Zhao's customer
    handover_id: int = 0


async def reminder(
    sessions: SessionFactory, *, kind: str, subject_type: str, subject_id: int, to: int, **more: Any
) -> int:
    async with unit_of_work(sessions) as session:
        row = Reminder(
            dedup_key=dedup_key(kind, subject_type, subject_id, to, "p"),
            kind=kind,
            subject_type=subject_type,
            subject_id=subject_id,
            recipient_id=to,
            due_at=NOW + timedelta(days=1),
            **more,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


async def company(world: World, names: tuple[str, ...] = NAMES) -> Leaving:
    sessions, keyring = world.services.sessions, world.services.keyring
    li = await world.member(name="Li")
    zhao = await world.member(name="Zhao")
    qian = await world.member(name="Qian")
    boss = await world.member(role="manager", name="Boss", language="en")
    wu = await world.member(team="West", name="Wu")
    li_s, zhao_s = await staff_of(sessions, li), await staff_of(sessions, zhao)
    qian_s, boss_s = await staff_of(sessions, qian), await staff_of(sessions, boss)
    await set_language(sessions, boss, "en")
    ids = [(await add_customer(sessions, keyring, li, name)).id or 0 for name in names]
    await set_columns(sessions, ids[1], status="approved", next_followup_on=NOW.date())
    await set_columns(sessions, ids[2], status="archived")
    theirs = (await add_customer(sessions, keyring, zhao, "宏达电子")).id or 0
    made = []
    async with unit_of_work(sessions) as session:
        for customer_id in (ids[0], theirs):
            complaint = await complaints.log_complaint(
                session,
                keyring=keyring,
                actor=li_s if customer_id == ids[0] else boss_s,  # a manager may assign Li
                customer_id=customer_id,
                values={
                    "channel": "phone",
                    "complaint_type": "delivery",
                    "severity": "high",
                    "description": "late",
                    "handler_id": li_s.id,
                },
                now=NOW,
                due_hours=DUE_HOURS,
            )
            made.append(complaint.id or 0)
        review = Review(
            kind=ReviewKind.customer_change,
            customer_id=theirs,
            team_id=zhao_s.team_id,
            submitted_by=li_s.id or 0,
        )
        session.add(review)
        await session.flush()
        await drafts.save(
            session,
            keyring,
            li_s.id or 0,
            DraftState(flow="new_customer", step="name", mode=DraftMode.ask, token=5, data={}),
        )
    reminders = [
        await reminder(
            sessions, kind="followup", subject_type="customer", subject_id=ids[1], to=li_s.id or 0
        ),
        await reminder(
            sessions,
            kind="stale",
            subject_type="customer",
            subject_id=ids[0],
            to=li_s.id or 0,
            snoozed_until=NOW + timedelta(hours=3),
        ),
        await reminder(
            sessions,
            kind="complaint_soon",
            subject_type="complaint",
            subject_id=made[0],
            to=li_s.id or 0,
        ),
        await reminder(
            sessions,
            kind="complaint_soon",
            subject_type="complaint",
            subject_id=made[1],
            to=li_s.id or 0,
        ),
    ]
    return Leaving(
        li,
        zhao,
        qian,
        boss,
        wu,
        li_s.id or 0,
        zhao_s.id or 0,
        qian_s.id or 0,
        ids,
        theirs,
        made,
        reminders,
        review.id or 0,
    )


async def set_language(sessions: SessionFactory, person: Person, language: str) -> None:
    async with unit_of_work(sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, person.id)
        assert staff is not None
        await staff_store.set_language(session, staff_id=staff.id or 0, language=language)


async def leave(sessions: SessionFactory, staff_id: int) -> int:
    """Deactivate the person, which opens their hand-over in the same transaction."""
    async with unit_of_work(sessions) as session:
        change = await staff_store.deactivate(session, actor=None, staff_id=staff_id)
    opened = change.handover
    assert opened is not None and opened.id is not None
    return opened.id


async def deactivate(sessions: SessionFactory, staff_id: int) -> None:
    """Mark someone inactive as the archive did before this issue: no hand-over opened (as a
    deactivation made before the upgrade left them), so the records wait as orphans."""
    async with unit_of_work(sessions) as session:
        await session.exec(
            update(Staff).where(col(Staff.id) == staff_id).values(active=False, updated_at=utcnow())
        )


async def owners(sessions: SessionFactory, ids: list[int]) -> list[int]:
    async with reading(sessions) as session:
        rows = await session.exec(
            select(Customer.id, Customer.owner_id).where(col(Customer.id).in_(ids))
        )
        found = dict(rows.all())
    return [found[i] for i in ids]


async def handlers(sessions: SessionFactory, ids: list[int]) -> list[int | None]:
    async with reading(sessions) as session:
        rows = await session.exec(
            select(Complaint.id, Complaint.handler_id).where(col(Complaint.id).in_(ids))
        )
        found = dict(rows.all())
    return [found[i] for i in ids]


async def pending_of(sessions: SessionFactory, staff_id: int) -> tuple[int, int]:
    """Pending reviews submitted by, and pending reminders to, `staff_id`."""
    async with reading(sessions) as session:
        reviews = (
            await session.exec(
                select(Review.id).where(
                    Review.submitted_by == staff_id, Review.status == ReviewStatus.pending
                )
            )
        ).all()
        reminders = (
            await session.exec(
                select(Reminder.id).where(
                    Reminder.recipient_id == staff_id,
                    Reminder.status == ReminderStatus.pending,
                    col(Reminder.subject_type).in_(handovers.MOVABLE_REMINDERS),
                )
            )
        ).all()
    return len(reviews), len(reminders)


async def staff_row(sessions: SessionFactory, staff_id: int) -> Staff:
    async with reading(sessions) as session:
        staff = await session.get(Staff, staff_id)
    assert staff is not None
    return staff


async def bulk_customers(
    sessions: SessionFactory,
    *,
    owner_id: int,
    team_id: int | None,
    count: int,
    name: str = "客",
    start: int = 0,
) -> list[int]:
    """Many approved customers of one owner, inserted as rows (no data keys: a hand-over's
    history line then carries no sealed diff, which costs nothing to measure)."""
    from storage.types import utcnow

    now = utcnow()
    rows = [
        {
            "customer_no": f"KH-B-{start + n:06d}",
            "kind": "company",
            "name": (name * 200)[:200] if len(name) < 200 else name,
            "customer_class": "C",
            "deal_status": "none",
            "consent_given": False,
            "owner_id": owner_id,
            "team_id": team_id,
            "status": "approved",
            "next_followup_on": NOW.date() + timedelta(days=n % 60),
            "version": 1,
            "sealed_seq": 0,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    table = Customer.__table__  # type: ignore[attr-defined]
    async with unit_of_work(sessions) as session:
        await session.exec(table.insert(), params=rows)  # type: ignore[call-overload]
        found = await session.exec(
            select(Customer.id)
            .where(col(Customer.customer_no).like("KH-B-%"), Customer.owner_id == owner_id)
            .order_by(col(Customer.id))
        )
        return [i for i in found.all() if i is not None]
