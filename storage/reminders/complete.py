"""`complete`: a customer saved with its essentials only ("save now, complete later") reminds
its owner, once, on the next working morning after it can be edited (approved or rejected; a
pending one waits for its manager), with a button that starts completing it. A record completed
meanwhile is not reminded of (the check is made again when the reminder is sent)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit
from storage.models import AuditEntry, Customer, RecordStatus, Reminder, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, customers_of, per_row

ACTIONS = ("complete",)
SAVED_EARLY = "customer.saved_essentials"  # the audit entry that marks "save now" records
EDITABLE = (RecordStatus.approved, RecordStatus.rejected)
SATURDAY = 5


def _lacking_in_clear() -> object:
    """What the clear columns say of an incomplete record (storage.fields.EXPECTED, but for
    the sealed address, which no query can read): no industry, no region, or no consent."""
    return or_(
        col(Customer.industry).is_(None),
        col(Customer.region).is_(None),
        col(Customer.consent_given).is_(False),
    )


async def saved_with_essentials(session: AsyncSession, *, actor: Staff, customer_id: int) -> None:
    """Note (in the audit log, in the saving transaction) that a customer was saved with its
    essentials only: the one record of it this reminder is planned from."""
    await audit.record(
        session,
        action=SAVED_EARLY,
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer_id,
    )


def working_morning(ctx: Plan, staff: Staff) -> datetime:
    """The person's next FOLLOWUP_HOUR on a weekday (a Saturday's or Sunday's waits)."""
    moment = ctx.next_morning(staff)
    zone = ctx.rules.zone_of(staff)
    while moment.astimezone(zone).weekday() >= SATURDAY:
        moment += timedelta(days=1)
    return moment


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """Records saved with their essentials only that became editable since the last run and
    still lack details → their owner, once per record (its dedup key has no period)."""
    query = select(Customer.id, Customer.owner_id).where(
        col(Customer.status).in_(EDITABLE),
        col(Customer.pooled_at).is_(None),
        col(Customer.updated_at) >= ctx.since - timedelta(days=1),
        _lacking_in_clear(),
        exists().where(
            col(AuditEntry.action) == SAVED_EARLY,
            col(AuditEntry.entity) == "customer",
            col(AuditEntry.entity_id) == col(Customer.id),
        ),
        ~exists().where(
            col(Reminder.subject_id) == col(Customer.id),
            col(Reminder.kind) == Kind.complete,
        ),
    )
    rows = []
    for customer_id, owner_id in (await session.exec(query)).all():
        owner = ctx.active(owner_id)
        if owner is None:
            continue
        due = working_morning(ctx, owner)
        rows.append(ctx.row(Kind.complete, "customer", customer_id, owner_id, "once", due))
    return rows


PLANNER = Planner("complete", find)


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still the owner's, still editable, and still lacking details (else it is dropped)."""
    customer = customers.get(row.subject_id or 0)
    if (
        customer is None
        or customer.status not in EDITABLE
        or customer.pooled_at is not None
        or customer.owner_id != row.recipient_id
        or not reader.recipient_ok(row)
    ):
        return None
    if customer.industry and customer.region and customer.consent_given:
        return None  # completed meanwhile
    assert row.id is not None
    return Notice(
        row.id,
        row.kind,
        {"customer": customer.name, "number": customer.customer_no},
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
