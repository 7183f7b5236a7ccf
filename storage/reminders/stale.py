"""`stale`: an approved record nobody confirmed for STALE_RECORD_DAYS asks its owner whether it
is still accurate (定期更新), a few a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus, Reminder, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row, capped_per_owner
from storage.reminders.reading import Notice, Reader, customers_of, per_row

ACTIONS = ("confirm", "snooze")
DAILY = timedelta(days=1)
PER_OWNER_PER_RUN = 5  # prompts per person a day, so a backlog trickles in


async def prompts_per_owner(
    session: AsyncSession,
    ctx: Plan,
    query: Any,
    order: Any,
    kind: Kind,
    period_of: Callable[[Any, Plan], str],
) -> list[Row]:
    """A prompt per customer `query` finds (its rows: customer id, owner id, basis), at most
    PER_OWNER_PER_RUN per owner in `order`, each due at the owner's next morning; the period
    comes from the basis."""
    rows = []
    for record in (await session.exec(capped_per_owner(query, order, PER_OWNER_PER_RUN))).all():
        customer_id, owner_id, basis = record[0], record[1], record[2]
        owner = ctx.active(owner_id)
        if owner is None or basis is None:
            continue
        period = period_of(basis, ctx)
        rows.append(
            ctx.row(kind, "customer", customer_id, owner_id, period, ctx.next_morning(owner))
        )
    return rows


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """Approved records nobody confirmed for STALE_RECORD_DAYS → the owner, a few a day."""
    basis = func.coalesce(col(Customer.last_checked_at), col(Customer.approved_at))
    cutoff = ctx.now - timedelta(days=ctx.rules.stale_days)
    query = (
        select(Customer.id, Customer.owner_id, basis.label("basis"))
        .join(Staff, col(Staff.id) == col(Customer.owner_id))
        .where(
            col(Customer.status) == RecordStatus.approved,
            col(Customer.pooled_at).is_(None),  # in the team pool: nobody's to confirm
            col(Staff.active).is_(True),
            basis <= cutoff,
            ~exists().where(
                col(Reminder.subject_id) == col(Customer.id),
                col(Reminder.kind) == Kind.stale,
                col(Reminder.created_at) >= basis,
            ),
        )
    )
    return await prompts_per_owner(session, ctx, query, basis, Kind.stale, _checked_on)


def _checked_on(checked: Any, ctx: Plan) -> str:
    """The period of a re-check: the day the record was last checked (or approved)."""
    if isinstance(checked, str):  # SQLite returns COALESCE of timestamps as text
        checked = datetime.fromisoformat(checked)
    return checked.date().isoformat()


PLANNER = Planner("stale", find, every=DAILY, bulk=True)


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still approved, still the owner's, and not confirmed since."""
    customer = reader.approved_owned(row, customers)
    if customer is None:
        return None
    checked = customer.last_checked_at or customer.approved_at
    if checked is None or not row.dedup_key.endswith(checked.date().isoformat()):
        return None  # confirmed since
    assert row.id is not None
    return Notice(
        row.id,
        row.kind,
        {
            "customer": customer.name,
            "number": customer.customer_no,
            "days": (reader.now - checked).days,
        },
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
