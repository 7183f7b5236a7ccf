"""`overdue`: a follow-up overdue by OVERDUE_ESCALATION_DAYS, escalated to the team's managers
(every manager leading the team, whether it is their own or one they lead besides)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.models import Customer, Reminder, Staff
from storage.reminders.cursor import DatedPlanner
from storage.reminders.followup import dated_rows, followup_sources, no_reminder, still_due
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Row, dialect_of
from storage.reminders.reading import Notice, Reader, customers_of, per_row
from storage.reminders.rules import Rules

# the team's manager opens the customer's card (its own buttons, checked at the press)
ACTIONS = ("open",)


def overdue_query(lo: date, hi: date, rules: Rules, dialect: str, changed: Any = None) -> list[Any]:
    """Follow-ups whose date plus OVERDUE_ESCALATION_DAYS falls in [lo, hi], per manager of the
    customer's team (not the owner) who has no escalation of it yet."""
    shift = timedelta(days=rules.overdue_days)
    manager = aliased(Staff)
    queries = []
    for on, conditions in followup_sources(lo - shift, hi - shift, rules.cycles, dialect, changed):
        queries.append(
            select(Customer.id, Customer.owner_id, manager.id, on)
            .join(
                manager,
                and_(
                    # every manager leading the customer's team, their own or one besides
                    *permissions.managers_of(col(Customer.team_id), staff=manager),
                    col(manager.id) != col(Customer.owner_id),
                ),
            )
            .where(
                *conditions,
                no_reminder(Kind.overdue, on, col(manager.id)),
            )
        )
    return queries


async def find(
    session: AsyncSession, ctx: Plan, lo: date, hi: date, changed: Any = None
) -> list[Row]:
    """An escalation per manager at the digest hour of the day it became overdue (in [lo, hi])."""
    queries = overdue_query(lo, hi, ctx.rules, dialect_of(session), changed)
    shift = timedelta(days=ctx.rules.overdue_days)
    return await dated_rows(session, ctx, queries, Kind.overdue, ctx.rules.digest_hour, shift)


PLANNER = DatedPlanner("overdue", find)


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still overdue, and the recipient still manages the customer's team."""
    customer = still_due(reader, row, customers)
    manager = reader.staff.get(row.recipient_id)
    if (
        customer is None
        or manager is None
        or not permissions.manages_team(manager, customer.team_id)
    ):
        return None
    assert row.id is not None and row.period_on is not None
    return Notice(
        row.id,
        row.kind,
        {
            "owner": reader.name(customer.owner_id),
            "customer": customer.name,
            "number": customer.customer_no,
            "on": row.period_on.isoformat(),
            "days": (reader.today(row.recipient_id) - row.period_on).days,
        },
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
