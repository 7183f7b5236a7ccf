"""The dated planners' cursor: what a follow-up planner already planned, so a poll re-reads only
new days and the customers changed since.

A dated planner (follow-ups, their escalation) plans one row per customer and day. Over a
million customers the same window read every minute costs seconds, and nothing in it changed:
the cursor (`ReminderPlanCursor`) remembers the last day planned, the customers' newest
`updated_at` and highest id seen, and a mark of the staff and the rules planned with. A poll
then plans each day it has not planned yet (one day at a time, so memory holds a day's rows,
not a million), and re-reads the window only for customers changed since the newest change it
had seen, or stamped within `MARGIN` before the poll that saved it (a transaction that stamped
an older `updated_at` and committed a little later is still picked up, as the name index does:
storage.search). Another staff mark or rules,
a clock that went back, or no cursor: the whole window is read, as before.

Days missed while the bot was down are not replayed a day at a time: storage.reminders.catch_up
sends each person one summary of them, and the dated planners start at today.

A poll reads one whole day, and the next only while it is within `DAY_BUDGET`: over a million
customers a day takes half a second, so after days down (today and tomorrow to plan) or a staff
change (the whole window again) the rest waits for the next poll, a minute later, and no poll
holds the database for seconds. The cursor then says how far it got, so the next poll goes on
from there; days come in order, today before tomorrow. A small archive plans them all at once.

Exactly once is still the outbox's unique key (ON CONFLICT DO NOTHING): two processes planning
at once, or a cursor moved back by a slower one, only ever make a poll read more.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import SessionFactory, reading, unit_of_work
from storage.models import Customer, ReminderPlanCursor, ReminderPlanRun, TeamLead
from storage.reminders.planning import Plan, Row, dialect_of, insert_chunked

MARGIN = timedelta(minutes=5)  # customers changed this long before the newest seen: re-read
DAY = timedelta(days=1)
DAY_BUDGET = 0.25  # seconds: after a whole day read, a poll reads another only within this

# a dated planner's query: its rows for the planning days [lo, hi], of `changed` customers only
DatedFind = Callable[[AsyncSession, Plan, date, date, Any], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Seen:
    """The customers' newest change and highest id, and the staff and rules mark, now."""

    changes: datetime | None
    last_id: int
    mark: str


def today_of(ctx: Plan) -> date:
    return ctx.now.astimezone(UTC).date()


async def planned_through(session: AsyncSession, name: str, ctx: Plan) -> date:
    """The last day `name` planned: its cursor's, else (a planner of an older version, or none
    yet) the day after its last run, as it planned through tomorrow; never before the catch-up
    limit (REMINDER_CATCHUP_DAYS)."""
    limit = (ctx.now - timedelta(days=ctx.rules.catchup_days)).astimezone(UTC).date()
    cursor = await session.get(ReminderPlanCursor, name)
    if cursor is not None:
        return max(cursor.planned_through, limit)
    run = await session.get(ReminderPlanRun, name)
    last = run.ran_at.astimezone(UTC).date() if run is not None else limit - DAY
    return max(last + DAY, limit)


def missed_days(ctx: Plan, through: date) -> tuple[date, date] | None:
    """Whole days nobody planned (the bot was down, or it is its first poll): from the day
    after `through` to yesterday, or None. The catch-up summarises them."""
    first, last = through + DAY, today_of(ctx) - DAY
    return (first, last) if first <= last else None


async def seen_now(session: AsyncSession, ctx: Plan) -> Seen:
    """What the cursor compares with: two steps down two indexes, and the staff (in memory)."""
    stamp = select(
        select(func.max(Customer.id)).scalar_subquery(),
        select(func.max(Customer.updated_at)).scalar_subquery(),
    )
    last_id, changes = (await session.exec(stamp)).one()
    leads = sorted((r.staff_id, r.team_id) for r in (await session.exec(select(TeamLead))).all())
    people = sorted(
        (s.id or 0, s.active, str(s.role), s.team_id, s.timezone) for s in ctx.staff.values()
    )
    rules = ctx.rules
    planned_by = (
        sorted(rules.cycles.items()),
        rules.followup_hour,
        rules.digest_hour,
        rules.overdue_days,
        rules.timezone,
    )
    mark = hashlib.sha256(repr((people, leads, planned_by)).encode()).hexdigest()
    return Seen(changes, int(last_id or 0), mark)


async def save_cursor(
    session: AsyncSession, name: str, days: tuple[date, date], seen: Seen, now: datetime
) -> None:
    """Upsert the cursor (two processes may finish together; the later one wins, and either
    one's cursor only makes the next poll read as much or more)."""
    insert = sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert
    table = ReminderPlanCursor.__table__  # type: ignore[attr-defined]
    values = {
        "planned_from": days[0],
        "planned_through": days[1],
        "changes_seen": seen.changes,
        "last_customer_id": seen.last_id,
        "mark": seen.mark,
        "updated_at": now,
    }
    statement = insert(table).values(name=name, **values)
    await session.exec(statement.on_conflict_do_update(index_elements=["name"], set_=values))


def changed_since(cursor: ReminderPlanCursor, seen: Seen) -> Any:
    """The customers changed (or added) since the cursor, as one range of
    ix_customers_updated_at: newer than the newest change seen, or stamped within MARGIN
    before the poll that saved the cursor (a transaction still open then commits a little
    later with an older stamp); and any id above the highest seen."""
    assert cursor.changes_seen is not None
    recent = cursor.updated_at - MARGIN
    stamp = col(Customer.updated_at)
    changed = stamp > cursor.changes_seen if cursor.changes_seen < recent else stamp >= recent
    if seen.last_id > cursor.last_customer_id:
        return or_(changed, col(Customer.id) > cursor.last_customer_id)
    return changed


@dataclass(frozen=True)
class DatedPlanner:
    """A planner of one row per customer and day, run from its cursor (see the module)."""

    name: str
    find: DatedFind
    every: timedelta | None = None  # every poll

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int:
        async with reading(sessions) as session:  # reads never wait for the bot's writes
            cursor = await session.get(ReminderPlanCursor, self.name)
            through = await planned_through(session, self.name, ctx)
            seen = await seen_now(session, ctx)
        today = today_of(ctx)
        # yesterday still gets its reminders (late rather than never) unless whole days were
        # missed: then the catch-up tells of them, and planning starts today
        lo = today if missed_days(ctx, through) else max(ctx.lo, today - DAY)
        if cursor is not None:  # never a day the catch-up told of
            lo = max(lo, cursor.planned_from)
        hi = ctx.hi
        usable = (
            cursor is not None
            and cursor.mark == seen.mark
            and cursor.changes_seen is not None
            and seen.changes is not None
            and seen.changes >= cursor.changes_seen
            and seen.last_id >= cursor.last_customer_id
        )
        created = 0
        if usable:
            assert cursor is not None
            if lo <= min(through, hi):  # the days planned before: changed customers only
                async with reading(sessions) as session:
                    rows = await self.find(
                        session, ctx, lo, min(through, hi), changed_since(cursor, seen)
                    )
                created += await insert_chunked(sessions, rows)
            first = max(lo, through + DAY)
        else:
            first = lo
        day, started = first, time.monotonic()
        while day <= hi:  # a day at a time: a day's rows in memory, never the whole window's
            if day > first and time.monotonic() - started > DAY_BUDGET:
                break  # the next poll goes on from `day` (the cursor says so)
            async with reading(sessions) as session:
                rows = await self.find(session, ctx, day, day, None)
            created += await insert_chunked(sessions, rows)
            day += DAY
        planned = hi if day > hi else day - DAY  # the last day read whole, in order
        async with unit_of_work(sessions) as session:
            await save_cursor(session, self.name, (lo, planned), seen, ctx.now)
        return created
