"""`overdue`: follow-ups overdue by OVERDUE_ESCALATION_DAYS, escalated to the team's managers
(every manager leading the team, whether it is their own or one they lead besides) in one
digest per manager and day.

The planner writes one row per (manager, day a follow-up became overdue), keyed
`overdue:staff:<manager>:<manager>:<day>` and inserted with ON CONFLICT DO NOTHING, so two
pollers, or a poll re-reading changed customers, still write one. It reads the (team, owner,
follow-up day) of the window's follow-ups, a few hundred rows however many customers there
are, where one row per customer and manager made a morning tens of thousands of rows.

What the digest lists is read at delivery, from the records as they are then: the customers
whose follow-up date plus OVERDUE_ESCALATION_DAYS is the row's day, still not visited nor moved,
still live and out of the pool, in a team the recipient still manages, not the recipient's own;
none left, nothing is sent. The names are listed whole, as many as fit one message with a
button each to open the card (bot/reminder_text.py, as the review digest); the rest counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.models import Customer, Reminder
from storage.reminders.cursor import DatedPlanner
from storage.reminders.followup import followup_sources
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Row, dialect_of
from storage.reminders.reading import Notice, Reader, effective_followup, per_row
from storage.reminders.review import DIGEST_LINES

# the digest's buttons open each customer's card (its own checks at the press)
ACTIONS: tuple[str, ...] = ()


def overdue_query(lo: date, hi: date, rules: Any, dialect: str, changed: Any = None) -> list[Any]:
    """(team, owner, follow-up date) of the follow-ups whose date plus OVERDUE_ESCALATION_DAYS
    falls in [lo, hi] (one query per source, each a date range of an index)."""
    shift = timedelta(days=rules.overdue_days)
    sources = followup_sources(lo - shift, hi - shift, rules.cycles, dialect, changed)
    return [
        select(Customer.team_id, Customer.owner_id, on).where(*conditions).distinct()
        for on, conditions in sources
    ]


async def find(
    session: AsyncSession, ctx: Plan, lo: date, hi: date, changed: Any = None
) -> list[Row]:
    """A digest per active manager of a team with a follow-up that becomes overdue on a day of
    [lo, hi] (not the manager's own), at the digest hour of that day in their zone."""
    shift = timedelta(days=ctx.rules.overdue_days)
    found: dict[tuple[int, date], Row] = {}
    managers: dict[int, list[Any]] = {}
    for query in overdue_query(lo, hi, ctx.rules, dialect_of(session), changed):
        for team_id, owner_id, on in (await session.exec(query)).all():
            if team_id is None or on is None:
                continue
            if team_id not in managers:
                managers[team_id] = [m for m in ctx.managers(team_id) if ctx.active(m.id)]
            day = on + shift
            for manager in managers[team_id]:
                assert manager.id is not None
                if manager.id == owner_id or (manager.id, day) in found:
                    continue
                found[(manager.id, day)] = ctx.row(
                    Kind.overdue,
                    "staff",
                    manager.id,
                    manager.id,
                    day.isoformat(),
                    ctx.at(manager, day, ctx.rules.digest_hour),
                    period_on=day,
                )
    return list(found.values())


PLANNER = DatedPlanner("overdue", find)


# the customers whose follow-up date is each day, by that date
Due = dict[date, list[Customer]]


def _followup_day(row: Reminder, rules: Any) -> date | None:
    """The follow-up date a row escalates: its day less OVERDUE_ESCALATION_DAYS; a row of one
    customer, planned before the digest (still pending at the upgrade), carries it itself."""
    if row.period_on is None:
        return None
    if row.subject_type == "customer":
        return row.period_on
    return row.period_on - timedelta(days=rules.overdue_days)


async def _due(reader: Reader, group: Sequence[Reminder]) -> Due:
    """The live customers whose follow-up falls on each of the group's days less
    OVERDUE_ESCALATION_DAYS: one indexed read a source and day, whoever the rows are for."""
    dialect = dialect_of(reader.session)
    due: Due = {}
    for on in {_followup_day(r, reader.rules) for r in group} - {None}:
        assert on is not None
        customers: dict[int, Customer] = {}
        for _, conditions in followup_sources(on, on, reader.rules.cycles, dialect):
            query = select(Customer).where(*conditions).order_by(col(Customer.id))
            for customer in (await reader.session.exec(query)).all():
                assert customer.id is not None
                customers[customer.id] = customer
        due[on] = [c for _, c in sorted(customers.items())]
    return due


def _line(reader: Reader, customer: Customer, on: date, recipient_id: int) -> dict[str, Any]:
    return {
        "customer_id": customer.id,
        "customer": customer.name,
        "number": customer.customer_no,
        "owner": reader.name(customer.owner_id),
        "on": on.isoformat(),
        "days": (reader.today(recipient_id) - on).days,
    }


async def _read(reader: Reader, row: Reminder, due: Due) -> Notice | None:
    """The recipient's customers still overdue since that day, in teams they still manage;
    none: no digest."""
    manager = reader.staff.get(row.recipient_id)
    on = _followup_day(row, reader.rules)
    if manager is None or on is None or not reader.recipient_ok(row):
        return None
    only = row.subject_id if row.subject_type == "customer" else None
    mine = [
        c
        for c in due.get(on, [])
        if c.owner_id != manager.id
        and (only is None or c.id == only)
        and permissions.manages_team(manager, c.team_id)
        and effective_followup(c, reader.rules.cycles) == on
    ]
    if not mine:
        return None
    assert row.id is not None
    lines = tuple(_line(reader, c, on, row.recipient_id) for c in mine[:DIGEST_LINES])
    return Notice(
        row.id,
        row.kind,
        {
            "count": len(mine),
            "more": max(0, len(mine) - DIGEST_LINES),
            "on": on.isoformat(),
            "days": reader.rules.overdue_days,
        },
        ACTIONS,
        lines=lines,
    )


describe = per_row(_due, _read)
