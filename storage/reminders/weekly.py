"""`weekly`: the week in numbers for each manager (their teams) and admin (the company).

A manager of several teams gets one summary: the numbers of all their teams together, then a
line per team (`Notice.lines`), so the whole stays one message however many teams they lead.

Beside the text, the planner queues the week's chart (storage.reports, drawn at delivery) as an
outbox message: one photo per team a manager leads, one of the whole company for an admin,
covering the seven days before the summary's day. Its row has its own dedup key, so planning
again after a restart adds nothing, and the outbox's lease sends it again only if the process
died in mid-send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import outbox, permissions, team_leads
from storage.models import (
    Complaint,
    Customer,
    RecordStatus,
    Reminder,
    Review,
    ReviewStatus,
    Visit,
)
from storage.reminders.kinds import LIVE, OPEN_COMPLAINTS, Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """The weekly summary for each manager and admin, on WEEKLY_SUMMARY_WEEKDAY at the digest
    hour; if the bot was down then, it comes late, up to a day (after that, next week's)."""
    rows = []
    for person in ctx.staff.values():
        if not permissions.receives_reports(person) or person.id is None:
            continue
        today = ctx.rules.today_of(person, ctx.now)
        monday = today - timedelta(days=today.isoweekday() - 1)
        day = monday + timedelta(days=ctx.rules.weekly_weekday - 1)
        if today < day:
            continue
        year, week, _ = day.isocalendar()
        due = ctx.at(person, day, ctx.rules.digest_hour)
        if due < ctx.now - timedelta(days=1):
            continue  # more than a day late (the bot was down, or was just installed): skip
        period = f"{year}-W{week:02d}"
        rows.append(ctx.row(Kind.weekly, "staff", person.id, person.id, period, due))
        rows += chart_rows(ctx, person, period, due, first=day - timedelta(days=7))
    return rows


def chart_rows(ctx: Plan, person: Any, period: str, due: datetime, *, first: date) -> list[Row]:
    """The week's charts for one person: the company's for an admin, each led team's else."""
    last = first + timedelta(days=6)
    if permissions.can_see_company_reports(person):
        teams: list[int | None] = [None]
    else:
        teams = sorted(
            t for t in permissions.teams_of(person) if permissions.can_see_reports(person, t)
        )
    return [
        ctx.row(
            outbox.Kind.report_chart,
            "team" if team is not None else "company",
            team,
            person.id,
            period,
            due,
            payload={"team": team, "first": first.isoformat(), "last": last.isoformat()},
        )
        for team in teams
    ]


PLANNER = Planner("weekly", find)


async def _nothing(reader: Reader, group: Sequence[Reminder]) -> None:
    """The numbers are counted per recipient, at reading."""


async def _read(reader: Reader, row: Reminder, _: None) -> Notice | None:
    """The numbers as they are now, for a recipient who is still a manager or an admin: the
    company's for an admin, each team's a manager leads (and their sum) for a manager."""
    person = reader.staff.get(row.recipient_id)
    if person is None or not permissions.receives_reports(person):
        return None
    assert row.id is not None
    today = reader.today(row.recipient_id)
    since = reader.now - timedelta(days=7)

    async def numbers_of(team_id: int | None) -> dict[str, int]:
        return await summary_numbers(
            reader.session, team_id=team_id, since=since, now=reader.now, today=today
        )

    if permissions.is_admin(person):
        return Notice(row.id, row.kind, {"team": None, **await numbers_of(None)})
    teams = [
        t
        for t in await team_leads.teams_led_by(reader.session, person)
        if permissions.can_see_reports(person, t.id)
    ]
    if not teams:
        return None
    per_team = [(team, await numbers_of(team.id)) for team in teams]
    if len(per_team) == 1:
        team, numbers = per_team[0]
        return Notice(row.id, row.kind, {"team": team.name, **numbers})
    totals = {key: sum(numbers[key] for _, numbers in per_team) for key in per_team[0][1]}
    return Notice(
        row.id,
        row.kind,
        {"team": None, "teams": len(per_team), **totals},
        lines=tuple({"team": team.name, **numbers} for team, numbers in per_team),
    )


describe = per_row(_nothing, _read)


async def summary_numbers(
    session: AsyncSession,
    *,
    team_id: int | None,
    since: datetime,
    now: datetime,
    today: date,
) -> dict[str, int]:
    """The week in numbers for one team (None: the whole company)."""

    def in_team(query: Any) -> Any:
        return query.where(col(Customer.team_id) == team_id) if team_id is not None else query

    async def count(query: Any) -> int:
        return int((await session.exec(query)).one() or 0)

    by_status = dict(
        (
            await session.exec(
                in_team(
                    select(Customer.status, func.count())
                    .where(col(Customer.status).in_(LIVE))
                    .group_by(col(Customer.status))
                )
            )
        ).all()
    )
    numbers = {
        "approved": int(by_status.get(RecordStatus.approved, 0)),
        "pending": int(by_status.get(RecordStatus.pending, 0)),
        "rejected": int(by_status.get(RecordStatus.rejected, 0)),
    }
    numbers["total"] = sum(numbers.values())
    numbers["new"] = await count(
        in_team(
            select(func.count(col(Customer.id))).where(
                col(Customer.created_at) >= since, col(Customer.status).in_(LIVE)
            )
        )
    )
    numbers["visits"] = await count(
        in_team(
            select(func.count(col(Visit.id)))
            .join(Customer, col(Customer.id) == col(Visit.customer_id))
            .where(col(Visit.visited_at) >= since, col(Visit.visited_at) <= now)
        )
    )
    numbers["overdue"] = await count(
        in_team(
            select(func.count(col(Customer.id))).where(
                col(Customer.status).in_(LIVE),
                col(Customer.next_followup_on) < today,
                or_(
                    col(Customer.last_visit_on).is_(None),
                    col(Customer.last_visit_on) < col(Customer.next_followup_on),
                ),
            )
        )
    )
    open_complaints = in_team(
        select(func.count(col(Complaint.id)))
        .join(Customer, col(Customer.id) == col(Complaint.customer_id))
        .where(col(Complaint.status).in_(OPEN_COMPLAINTS))
    )
    numbers["complaints"] = await count(open_complaints)
    numbers["complaints_overdue"] = await count(open_complaints.where(col(Complaint.due_at) < now))
    reviews = select(func.count(col(Review.id))).where(col(Review.status) == ReviewStatus.pending)
    if team_id is not None:
        reviews = reviews.where(col(Review.team_id) == team_id)
    numbers["reviews"] = await count(reviews)
    return numbers
