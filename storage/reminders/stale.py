"""`stale`: an approved record nobody confirmed for STALE_RECORD_DAYS asks its owner whether it
is still accurate (定期更新), a few a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus, Reminder
from storage.reminders.kinds import Kind
from storage.reminders.planning import OWNERS_CHUNK, Plan, Planner, Row, Shape, first_per_owner
from storage.reminders.reading import Notice, Reader, customers_of, per_row

ACTIONS = ("confirm", "snooze")
DAILY = timedelta(days=1)
PER_OWNER_PER_RUN = 5  # prompts per person a day, so a backlog trickles in


async def prompts_per_owner(
    session: AsyncSession,
    ctx: Plan,
    shape: Shape,
    kind: Kind,
    period_of: Callable[[Any, Plan], str],
) -> list[Row]:
    """A prompt per customer `shape` picks (its columns: customer id, owner id, basis), at most
    PER_OWNER_PER_RUN per active owner, each due at the owner's next morning; the period comes
    from the basis."""
    owners = [s.id for s in ctx.staff.values() if s.active and s.id is not None]
    dialect = session.get_bind().dialect.name
    rows = []
    for start in range(0, len(owners), OWNERS_CHUNK):
        chunk = owners[start : start + OWNERS_CHUNK]
        query = first_per_owner(chunk, shape, PER_OWNER_PER_RUN, dialect)
        for customer_id, owner_id, basis in (await session.exec(query)).all():
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
    cutoff = ctx.now - timedelta(days=ctx.rules.stale_days)
    return await prompts_per_owner(session, ctx, pick(cutoff), Kind.stale, _checked_on)


def pick(cutoff: datetime) -> Shape:
    """Approved records out of the pool last checked (or approved) by `cutoff`, oldest first,
    not prompted since; the order is ix_customers_recheck_due's expression, so it is a seek."""

    def shape(customer: Any) -> tuple[list[Any], list[Any], Any]:
        basis = func.coalesce(col(customer.last_checked_at), col(customer.approved_at))
        conditions = [
            col(customer.status) == RecordStatus.approved,
            col(customer.pooled_at).is_(None),  # in the team pool: nobody's to confirm
            basis <= cutoff,
            ~exists().where(
                col(Reminder.subject_id) == col(customer.id),
                col(Reminder.kind) == Kind.stale,
                col(Reminder.created_at) >= basis,
            ),
        ]
        return [customer.id, customer.owner_id, basis.label("basis")], conditions, basis

    return shape


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
