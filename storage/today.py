"""/today: one person's plan for the day, read in one unit of work.

What it covers, for everyone alike (SPEC section 4: a salesperson sees their own; a manager's
and an admin's plan is what they themselves own and handle, not their whole team's, which their
digests and /my cover):

- follow-ups due today and overdue: customers they own and may see (not in the pool, neither
  archived nor destroyed), by `next_followup_on`;
- open complaints they handle (open, in progress, reopened), soonest due first;
- birthdays of the key persons of those customers, today and in the coming days (sealed, so
  each customer's data key is opened once);
- nearby customers, when a location is shared: storage.checkin.nearby.

Each list holds at most `limit` entries; the totals say how many there are in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions, vault
from storage.crypto import DecryptionError, Keyring
from storage.models import Complaint, Customer, DataKey, KeyPerson, RecordStatus, Staff
from storage.reminders.birthday import birthday_in, parse_birthday
from storage.reminders.kinds import OPEN_COMPLAINTS

T = TypeVar("T")
LIMIT = 5  # entries a section shows; the rest are counted
BIRTHDAY_DAYS = 6  # today and the six days after: this week


@dataclass(frozen=True)
class FollowUp:
    customer_id: int
    customer_no: str
    name: str
    due_on: date


@dataclass(frozen=True)
class OpenComplaint:
    complaint_id: int
    complaint_no: str
    customer_name: str
    severity: str
    due_at: datetime


@dataclass(frozen=True)
class Birthday:
    key_person_id: int
    customer_id: int
    name: str
    customer_name: str
    on: date


@dataclass
class Section(Generic[T]):
    entries: list[T] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.entries))


@dataclass
class Plan:
    today: date
    due: Section[FollowUp]
    overdue: Section[FollowUp]
    complaints: Section[OpenComplaint]
    birthdays: Section[Birthday]

    @property
    def empty(self) -> bool:
        return not (self.due.total or self.overdue.total or self.complaints.total) and not (
            self.birthdays.total
        )


def _own(actor: Staff) -> list[object]:
    """The customers of the actor's plan: owned, visible, live."""
    return [
        col(Customer.owner_id) == actor.id,
        permissions.customers_visible_to(actor),
        col(Customer.pooled_at).is_(None),
        col(Customer.status).not_in([RecordStatus.archived, RecordStatus.destroyed]),
    ]


async def _follow_ups(
    session: AsyncSession, actor: Staff, condition: object, limit: int
) -> Section[FollowUp]:
    where = [*_own(actor), condition]
    total = (await session.exec(select(func.count()).select_from(Customer).where(*where))).one()
    rows = (
        await session.exec(
            select(Customer.id, Customer.customer_no, Customer.name, Customer.next_followup_on)
            .where(*where)
            .order_by(col(Customer.next_followup_on), col(Customer.id))
            .limit(limit)
        )
    ).all()
    return Section(
        [FollowUp(i, n, name, due) for i, n, name, due in rows if i is not None and due],
        int(total),
    )


async def _complaints(session: AsyncSession, actor: Staff, limit: int) -> Section[OpenComplaint]:
    where = [
        col(Complaint.handler_id) == actor.id,
        col(Complaint.status).in_([str(s) for s in OPEN_COMPLAINTS]),
        col(Customer.status) != RecordStatus.destroyed,
    ]
    joined = (
        select(func.count())
        .select_from(Complaint)
        .join(Customer, col(Customer.id) == col(Complaint.customer_id))
    )
    total = (await session.exec(joined.where(*where))).one()
    rows = (
        await session.exec(
            select(
                Complaint.id,
                Complaint.complaint_no,
                Customer.name,
                Complaint.severity,
                Complaint.due_at,
            )
            .join(Customer, col(Customer.id) == col(Complaint.customer_id))
            .where(*where)
            .order_by(col(Complaint.due_at), col(Complaint.id))
            .limit(limit)
        )
    ).all()
    return Section(
        [OpenComplaint(i, n, name, s, due) for i, n, name, s, due in rows if i is not None],
        int(total),
    )


async def _birthdays(
    session: AsyncSession, keyring: Keyring, actor: Staff, today: date, limit: int
) -> Section[Birthday]:
    rows = (
        await session.exec(
            select(
                KeyPerson.id,
                KeyPerson.name,
                KeyPerson.sealed,
                Customer.id,
                Customer.name,
                DataKey.kek_id,
                DataKey.wrapped,
            )
            .join(Customer, col(Customer.id) == col(KeyPerson.customer_id))
            .join(DataKey, col(DataKey.customer_id) == col(Customer.id))
            .where(*_own(actor), col(KeyPerson.sealed).is_not(None))
            .order_by(col(Customer.id), col(KeyPerson.id))
        )
    ).all()
    keys: dict[int, bytes | None] = {}
    found: list[Birthday] = []
    last = today + timedelta(days=BIRTHDAY_DAYS)
    for person_id, name, sealed, customer_id, customer_name, kek_id, wrapped in rows:
        if person_id is None or customer_id is None:
            continue
        if customer_id not in keys:
            try:
                keys[customer_id] = (
                    keyring.unwrap(kek_id, wrapped, customer_id=customer_id) if wrapped else None
                )
            except DecryptionError:
                keys[customer_id] = None
        key = keys[customer_id]
        if key is None:
            continue
        try:
            opened = vault.unseal(key, sealed, table="key_persons", row_id=person_id) or {}
        except DecryptionError:
            continue
        parsed = parse_birthday(opened.get("birthday"))
        if parsed is None:
            continue
        for year in (today.year, today.year + 1):  # a week at the turn of the year
            day = birthday_in(year, *parsed)
            if today <= day <= last:
                found.append(Birthday(person_id, customer_id, name, customer_name, day))
                break
    found.sort(key=lambda b: (b.on, b.name, b.key_person_id))
    return Section(found[:limit], len(found))


async def plan_for(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, today: date, limit: int = LIMIT
) -> Plan | None:
    """The actor's plan for `today` (their local day); None for someone no longer active."""
    if not actor.active:
        return None
    due = await _follow_ups(session, actor, col(Customer.next_followup_on) == today, limit)
    overdue = await _follow_ups(session, actor, col(Customer.next_followup_on) < today, limit)
    return Plan(
        today=today,
        due=due,
        overdue=overdue,
        complaints=await _complaints(session, actor, limit),
        birthdays=await _birthdays(session, keyring, actor, today, limit),
    )
