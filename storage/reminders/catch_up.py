"""`catch_up`: what fell due while the reminders were not running, one message per person.

After whole days without a poll (the bot was down, or it has just been installed) the dated
planners do not replay each missed day's follow-ups and escalations (a week of them, hundreds
of rows a person): they plan from today (storage.reminders.cursor), and this planner writes one
row per person instead: each owner with a follow-up that fell due on a missed day, each manager
of a team with a follow-up that became overdue on one. Keyed by the missed days, so two
processes planning at once, or a restart, still write one.

The counts are read at delivery, from the records as they are then: only follow-ups still open
(not visited, not moved, not archived, not in the pool) are counted; none left, no message.
The /today plan (`td:r`, one tap) lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlmodel import col, func, select

from storage import permissions
from storage.db import SessionFactory, unit_of_work
from storage.models import Customer, Reminder
from storage.reminders.cursor import missed_days, planned_through
from storage.reminders.followup import followup_sources
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, add_reminders, dialect_of
from storage.reminders.reading import Notice, Reader, per_row

ACTIONS = ("today",)
WATCHED = "followup"  # the planner whose missed days are summarised


def _period(start: date, end: date) -> str:
    return f"{start.isoformat()}..{end.isoformat()}"


@dataclass(frozen=True)
class CatchUpPlanner:
    """Writes the summaries of the days the follow-up planner missed (before it plans today)."""

    name: str = "catch_up"
    every: timedelta | None = None

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int:
        async with unit_of_work(sessions) as session:
            missed = missed_days(ctx, await planned_through(session, WATCHED, ctx))
            if missed is None:
                return 0
            start, end = missed
            dialect = dialect_of(session)
            shift = timedelta(days=ctx.rules.overdue_days)
            owners: set[int] = set()
            teams: set[int] = set()
            for _, conditions in followup_sources(start, end, ctx.rules.cycles, dialect):
                found = await session.exec(select(Customer.owner_id).where(*conditions).distinct())
                owners.update(found.all())
            for _, conditions in followup_sources(
                start - shift, end - shift, ctx.rules.cycles, dialect
            ):
                found = await session.exec(select(Customer.team_id).where(*conditions).distinct())
                teams.update(t for t in found.all() if t is not None)
            people = {o for o in owners if ctx.active(o)}
            people |= {m.id for t in teams for m in ctx.managers(t) if ctx.active(m.id)}
            payload = {"start": start.isoformat(), "end": end.isoformat()}
            rows = [
                ctx.row(
                    Kind.catch_up,
                    "staff",
                    person,
                    person,
                    _period(start, end),
                    ctx.now,
                    payload=payload,
                )
                for person in sorted(p for p in people if p is not None)
            ]
            return await add_reminders(session, rows)


PLANNER = CatchUpPlanner()


# (own counts by owner, team counts by (team, owner)) for each missed period
Counts = dict[tuple[date, date], tuple[dict[int, int], dict[tuple[int, int], int]]]


def _days(row: Reminder) -> tuple[date, date] | None:
    try:
        payload = json.loads(row.payload or "{}")
        return date.fromisoformat(payload["start"]), date.fromisoformat(payload["end"])
    except (ValueError, KeyError, TypeError):
        return None


async def _counts(reader: Reader, group: Sequence[Reminder]) -> Counts:
    """Open follow-ups per owner, and per team and owner, for each period in the group: one
    grouped count a source, however many people the group holds."""
    session = reader.session
    dialect = dialect_of(session)
    shift = timedelta(days=reader.rules.overdue_days)
    counts: Counts = {}
    for days in {d for d in (_days(r) for r in group) if d is not None}:
        start, end = days
        own: dict[int, int] = {}
        team: dict[tuple[int, int], int] = {}
        for _, conditions in followup_sources(start, end, reader.rules.cycles, dialect):
            query = (
                select(Customer.owner_id, func.count())
                .where(*conditions)
                .group_by(col(Customer.owner_id))
            )
            for owner, n in (await session.exec(query)).all():
                own[owner] = own.get(owner, 0) + n
        for _, conditions in followup_sources(
            start - shift, end - shift, reader.rules.cycles, dialect
        ):
            query = (
                select(Customer.team_id, Customer.owner_id, func.count())
                .where(*conditions)
                .group_by(col(Customer.team_id), col(Customer.owner_id))
            )
            for team_id, owner, n in (await session.exec(query)).all():
                if team_id is not None:
                    team[(team_id, owner)] = team.get((team_id, owner), 0) + n
        counts[days] = (own, team)
    return counts


async def _read(reader: Reader, row: Reminder, counts: Counts) -> Notice | None:
    """How many of the person's follow-ups, and of their teams', are still open; none: none."""
    days = _days(row)
    person = reader.staff.get(row.recipient_id)
    if days is None or person is None or not reader.recipient_ok(row):
        return None
    own_counts, team_counts = counts.get(days, ({}, {}))
    own = own_counts.get(person.id or 0, 0)
    team = sum(
        n
        for (team_id, owner), n in team_counts.items()
        if owner != person.id and permissions.manages_team(person, team_id)
    )
    if not own and not team:
        return None
    assert row.id is not None
    values: dict[str, Any] = {
        "start": days[0].isoformat(),
        "end": days[1].isoformat(),
        "own": own,
        "team": team,
    }
    return Notice(row.id, row.kind, values, ACTIONS)


describe = per_row(_counts, _read)
