"""`overdue`: a follow-up overdue by OVERDUE_ESCALATION_DAYS, escalated to the team's managers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, Reminder, Role, Staff
from storage.reminders.followup import followup_sources, no_reminder
from storage.reminders.kinds import LIVE, Kind
from storage.reminders.planning import Plan, Planner, Row, dialect_of
from storage.reminders.reading import Notice, Reader, customers_of, effective_followup, per_row
from storage.reminders.rules import Rules


def overdue_query(lo: date, hi: date, rules: Rules, dialect: str) -> list[Any]:
    """Follow-ups whose date plus OVERDUE_ESCALATION_DAYS falls in [lo, hi], per manager of the
    customer's team (not the owner) who has no escalation of it yet."""
    shift = timedelta(days=rules.overdue_days)
    manager = aliased(Staff)
    queries = []
    for on, conditions in followup_sources(lo - shift, hi - shift, rules.cycles, dialect):
        queries.append(
            select(Customer.id, Customer.owner_id, manager.id, on)
            .join(
                manager,
                and_(
                    col(manager.team_id) == col(Customer.team_id),
                    col(manager.role) == Role.manager,
                    col(manager.active).is_(True),
                    col(manager.id) != col(Customer.owner_id),
                ),
            )
            .where(
                *conditions,
                no_reminder(Kind.overdue, on, col(manager.id)),
            )
        )
    return queries


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """An escalation per manager at the digest hour of the day it became overdue."""
    rows = []
    shift = timedelta(days=ctx.rules.overdue_days)
    for query in overdue_query(ctx.lo, ctx.hi, ctx.rules, dialect_of(session)):
        for customer_id, _owner, manager_id, on in (await session.exec(query)).all():
            manager = ctx.active(manager_id)
            if manager is None or on is None:
                continue
            due = ctx.at(manager, on + shift, ctx.rules.digest_hour)
            rows.append(
                ctx.row(
                    Kind.overdue,
                    "customer",
                    customer_id,
                    manager_id,
                    on.isoformat(),
                    due,
                    period_on=on,
                )
            )
    return rows


PLANNER = Planner("overdue", find, bulk=True)


async def _read(reader: Reader, row: Reminder, customers: dict[int, Customer]) -> Notice | None:
    """Still overdue, and the recipient still manages the customer's team."""
    customer = customers.get(row.subject_id or 0)
    manager = reader.staff.get(row.recipient_id)
    if (
        customer is None
        or manager is None
        or not manager.active
        or manager.role != Role.manager
        or manager.team_id != customer.team_id
        or customer.status not in LIVE
        or effective_followup(customer, reader.rules.cycles) != row.period_on
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
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read)
