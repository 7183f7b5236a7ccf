"""`followup`: the owner's follow-up is due today, or overdue.

The follow-up planner finds only what has no row yet with an anti-join on
`ix_reminders_subject`, so a poll over a million customers reads a few days' worth of index
entries and writes nothing when nothing is new.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, Reminder, Staff
from storage.reminders.cursor import DatedPlanner
from storage.reminders.kinds import LIVE, Kind
from storage.reminders.planning import Plan, Row, dialect_of, plus_days, unindexed
from storage.reminders.reading import Notice, Reader, customers_of, effective_followup, per_row

ACTIONS = ("visit", "done", "snooze", "reschedule")


def followup_sources(
    lo: date, hi: date, cycles: dict[str, int], dialect: str, changed: Any = None
) -> list[tuple[Any, list[Any]]]:
    """(follow-up date expression, conditions) for each way a follow-up date arises: the
    customer's next follow-up date (read from ix_customers_followup_due), or, without one,
    its class cycle after the last visit (ix_customers_visit_due). Either way a date range
    of an index: a few days' worth of customers, however many there are.

    With `changed` (a condition on the customers changed since the planner's cursor) the
    dates are read off the rows that condition's index finds instead."""
    # off their index when another condition picks the few rows
    dated = (lambda c: unindexed(c, dialect)) if changed is not None else (lambda c: c)
    also = [changed] if changed is not None else []
    # a customer in the team pool has nobody to follow it up (storage.pool)
    live = and_(
        unindexed(col(Customer.status), dialect).in_(LIVE),
        unindexed(col(Customer.pooled_at), dialect).is_(None),
    )
    sources: list[tuple[Any, list[Any]]] = [
        (
            col(Customer.next_followup_on),
            [
                dated(col(Customer.next_followup_on)) >= lo,
                dated(col(Customer.next_followup_on)) <= hi,
                or_(
                    col(Customer.last_visit_on).is_(None),
                    col(Customer.last_visit_on) < col(Customer.next_followup_on),
                ),
                live,
                *also,
            ],
        )
    ]
    for customer_class, days in sorted(cycles.items()):
        sources.append(
            (
                plus_days(col(Customer.last_visit_on), days, dialect),
                [
                    unindexed(col(Customer.next_followup_on), dialect).is_(None),
                    unindexed(col(Customer.customer_class), dialect) == customer_class,
                    dated(col(Customer.last_visit_on)) >= lo - timedelta(days=days),
                    dated(col(Customer.last_visit_on)) <= hi - timedelta(days=days),
                    live,
                    *also,
                ],
            )
        )
    return sources


def no_reminder(kind: str, on: Any, recipient: Any) -> Any:
    """NOT EXISTS a reminder of `kind` about this customer for that day and recipient."""
    return ~exists().where(
        col(Reminder.subject_id) == col(Customer.id),
        col(Reminder.kind) == kind,
        col(Reminder.period_on) == on,
        col(Reminder.recipient_id) == recipient,
    )


def followup_query(
    lo: date, hi: date, cycles: dict[str, int], dialect: str, changed: Any = None
) -> list[Any]:
    """Due-follow-up queries (one per source): customers of active owners, follow-up date in
    [lo, hi], no reminder yet. Public so the benchmark can show their plans."""
    queries = []
    for on, conditions in followup_sources(lo, hi, cycles, dialect, changed):
        queries.append(
            select(Customer.id, Customer.owner_id, on)
            .join(Staff, col(Staff.id) == col(Customer.owner_id))
            .where(
                *conditions,
                col(Staff.active).is_(True),
                no_reminder(Kind.followup, on, col(Customer.owner_id)),
            )
        )
    return queries


async def dated_rows(
    session: AsyncSession,
    ctx: Plan,
    queries: list[Any],
    kind: Kind,
    hour: int,
    shift: timedelta = timedelta(0),
) -> list[Row]:
    """A row per (customer, recipient, follow-up day) the queries found (each of their rows
    ends with the recipient and the day), due at `hour` on that day plus `shift`, in the
    recipient's zone."""
    rows = []
    moments: dict[tuple[int, date], tuple[datetime, str]] = {}  # a few hundred, for many rows
    for query in queries:
        for record in (await session.exec(query)).all():
            customer_id, recipient_id, on = record[0], record[-2], record[-1]
            recipient = ctx.active(recipient_id)
            if recipient is None or on is None:
                continue
            known = moments.get((recipient_id, on))
            if known is None:
                known = moments[(recipient_id, on)] = (
                    ctx.at(recipient, on + shift, hour),
                    on.isoformat(),
                )
            due, period = known
            rows.append(
                ctx.row(kind, "customer", customer_id, recipient_id, period, due, period_on=on)
            )
    return rows


async def find(
    session: AsyncSession, ctx: Plan, lo: date, hi: date, changed: Any = None
) -> list[Row]:
    """A reminder for the owner at FOLLOWUP_HOUR of each follow-up day in [lo, hi]."""
    queries = followup_query(lo, hi, ctx.rules.cycles, dialect_of(session), changed)
    return await dated_rows(session, ctx, queries, Kind.followup, ctx.rules.followup_hour)


PLANNER = DatedPlanner("followup", find)


def still_due(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Customer | None:
    """The row's customer if it is live, out of the team pool, and that day is still its
    follow-up day."""
    customer = customers.get(row.subject_id or 0)
    if customer is None or customer.status not in LIVE or customer.pooled_at is not None:
        return None
    if effective_followup(customer, reader.rules.cycles) != row.period_on:
        return None
    return customer


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still the owner's, and still that day's follow-up (no visit or new date since)."""
    customer = still_due(reader, row, customers)
    if customer is None or not reader.recipient_ok(row) or customer.owner_id != row.recipient_id:
        return None
    assert row.id is not None and row.period_on is not None
    late = (reader.today(row.recipient_id) - row.period_on).days
    return Notice(
        row.id,
        row.kind,
        {
            "customer": customer.name,
            "number": customer.customer_no,
            "on": row.period_on.isoformat(),
            "days": max(late, 0),
            "late": late > 0,
        },
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
