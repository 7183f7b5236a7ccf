"""`retention`: archived customers whose archiving is older than RETENTION_YEARS are proposed to
each admin for destruction (销毁, issue 11 item 5), at most once a month.

Nothing is destroyed here: the message lists the customers, each with a button that files the
destroy request (`ar:d:<customer id>`, the archive flow's), which a second person then decides
through the review flow like any other. One row per admin and month (its dedup key names the
month in the admin's time zone), so restarts and two bot processes plan it once; the list itself
is read when the message is sent, so a customer reactivated, destroyed or already under review
meanwhile is not proposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.models import Customer, RecordStatus, Reminder, Review, ReviewStatus
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row

SHOWN = 20  # customers listed (each with its button) in one message; the rest are counted
EVERY = timedelta(hours=6)


def cutoff(now: datetime, years: int) -> datetime:
    """`years` whole years before `now` (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def _due(years: int, now: datetime) -> list[object]:
    """Archived before the cutoff, and no review pending (a request already filed)."""
    return [
        col(Customer.status) == RecordStatus.archived,
        col(Customer.archived_at).is_not(None),
        col(Customer.archived_at) < cutoff(now, years),
        ~exists().where(
            col(Review.customer_id) == col(Customer.id),
            col(Review.status) == ReviewStatus.pending,
        ),
    ]


async def count_due(session: AsyncSession, years: int, now: datetime) -> int:
    found = await session.exec(select(func.count()).select_from(Customer).where(*_due(years, now)))
    return int(found.one())


async def oldest_due(
    session: AsyncSession, years: int, now: datetime, limit: int = SHOWN
) -> list[tuple[int, str, str, datetime]]:
    """(id, number, name, archived_at) of the first `limit` due, the longest archived first."""
    rows = await session.exec(
        select(Customer.id, Customer.customer_no, Customer.name, Customer.archived_at)
        .where(*_due(years, now))
        .order_by(col(Customer.archived_at), col(Customer.id))
        .limit(limit)
    )
    return [(cid, no, name, at) for cid, no, name, at in rows.all() if cid is not None]


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """One row per admin and month, due at the digest hour, when any customer is due."""
    years = ctx.rules.retention_years
    if not years or not await count_due(session, years, ctx.now):
        return []
    rows = []
    for person in ctx.staff.values():
        if person.id is None or not permissions.is_admin(person):
            continue
        today = ctx.rules.today_of(person, ctx.now)
        due = ctx.at(person, today, ctx.rules.digest_hour)
        month = today.strftime("%Y-%m")
        rows.append(ctx.row(Kind.retention, "staff", person.id, person.id, month, due))
    return rows


PLANNER = Planner("retention", find, every=EVERY)


async def _list(reader: Reader, group: Sequence[Reminder]) -> tuple[int, list] | None:
    """Who is due now, read once for all the rows (at delivery, not at planning)."""
    years = reader.rules.retention_years
    if not years:
        return None
    total = await count_due(reader.session, years, reader.now)
    return total, await oldest_due(reader.session, years, reader.now)


async def _read(reader: Reader, row: Reminder, due: tuple[int, list] | None) -> Notice | None:
    """The list for a recipient who is still an admin; nothing (cancelled) if none is due."""
    person = reader.staff.get(row.recipient_id)
    if due is None or person is None or not permissions.is_admin(person):
        return None
    total, shown = due
    if not total or not shown:
        return None
    assert row.id is not None
    lines = tuple(
        {
            "customer_id": cid,
            "number": number,
            "customer": name,
            "archived": reader.local(archived, person.id or 0)[:10],
        }
        for cid, number, name, archived in shown
    )
    return Notice(
        row.id,
        row.kind,
        {
            "count": total,
            "years": reader.rules.retention_years,
            "more": max(0, total - len(shown)),
        },
        actions=("destroy",),
        lines=lines,
    )


describe = per_row(_list, _read)
