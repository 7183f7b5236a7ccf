"""Reports (/report, /stats, the weekly chart): the numbers of a period, counted by the database.

Every figure is one SQL aggregation over clear columns (no sealed value is opened), for a
*scope* (one team, or the whole company for an admin) and a *period* (two local dates, both
included, in the viewer's time zone). Teams are the customers' teams (`Customer.team_id`):
a visit or complaint counts for the team its customer belongs to now. Drafts, archived and
destroyed customers count nowhere (`LIVE`).

What each figure means:

- **visits per salesperson**: visits with `visited_at` in the period, by who made them; every
  active salesperson of the scope is listed, with 0 if they made none.
- **new customers**: customers created in the period that are past the draft (pending,
  approved or rejected); **approved**: customers whose `approved_at` is in the period.
- **pipeline by stage**: the live customers of the scope by their stage now (红/黄/青/烂苹果,
  or none); **movement**: per stage, the visits in the period that moved a customer into it
  (`Visit.stage_change`). A stage changed by editing the card lives only in the sealed
  history and is not counted.
- **follow-up discipline**: a follow-up is the next follow-up date `D` that a visit set
  (`Visit.next_followup_on`), counted for the salesperson who made that visit, when `D` falls
  in the period. It is
    * *on time* when the customer's next visit after that one came on or before `D`,
    * *late* when the next visit came, but after `D`,
    * *overdue* when no visit came yet and `D` is before today,
    * *not yet due* (counted apart) when no visit came yet and `D` is today or later.
  Days are the viewer's local days (the zone's offset at the end of the period; a daylight
  saving change inside the period can shift a visit near midnight by one day).
- **complaints**: *opened* = received in the period; *closed* = closed in the period;
  *past due* = due in the period and not closed by then (closed later, or still open); *time
  to resolve* = hours from receipt to closing, average and longest, of those closed in the
  period, by severity.

Date arithmetic differs between SQLite and PostgreSQL; `local_day` and `hours_between` below
are the only dialect-specific SQL, compiled for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Date, Float, and_, case, func, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions, team_leads
from storage.errors import Refused
from storage.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    RecordStatus,
    Role,
    Severity,
    Staff,
    Stage,
    Team,
    Visit,
)
from storage.reminders.kinds import LIVE, OPEN_COMPLAINTS

MAX_DAYS = 366  # a chosen period longer than a year is refused: the charts would not read
SEVERITIES = (Severity.critical, Severity.high, Severity.medium, Severity.low)
STAGES: tuple[str | None, ...] = (*(s.value for s in Stage), None)


# ---------------------------------------------------------------------------------------------
# the two dialect-specific pieces


class local_day(FunctionElement[date]):
    """The local date of a UTC timestamp column, `minutes` east of UTC."""

    type = Date()
    inherit_cache = True
    name = "local_day"

    def __init__(self, column: Any, minutes: int) -> None:
        self.minutes = int(minutes)
        super().__init__(column)


@compiles(local_day, "sqlite")
def _local_day_sqlite(element: local_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '{element.minutes:+d} minutes')"


@compiles(local_day, "postgresql")
def _local_day_postgresql(element: local_day, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(({column} AT TIME ZONE 'UTC') + INTERVAL '{element.minutes:d} minutes' AS DATE)"


class hours_between(FunctionElement[float]):
    """Hours from `start` to `end`, two UTC timestamp columns."""

    type = Float()
    inherit_cache = True
    name = "hours_between"


@compiles(hours_between, "sqlite")
def _hours_sqlite(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 24.0)"


@compiles(hours_between, "postgresql")
def _hours_postgresql(element: hours_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)"


# ---------------------------------------------------------------------------------------------
# periods and scopes


@dataclass(frozen=True)
class Period:
    """Two local dates, both included, and the UTC instants that bound them."""

    first: date
    last: date
    start: datetime  # the first day's local midnight, in UTC
    end: datetime  # the local midnight after the last day, in UTC (excluded)
    minutes: int  # the zone's offset east of UTC at the end, for `local_day`

    @classmethod
    def of(cls, first: date, last: date, zone: tzinfo) -> Period:
        """The period from `first` to `last`; Refused when backwards or longer than a year."""
        if last < first:
            raise Refused("report_period_backwards")
        if (last - first).days + 1 > MAX_DAYS:
            raise Refused("report_period_too_long", days=MAX_DAYS)
        start = datetime.combine(first, time(0), zone).astimezone(UTC)
        end_local = datetime.combine(last + timedelta(days=1), time(0), zone)
        offset = end_local.utcoffset() or timedelta(0)
        return cls(first, last, start, end_local.astimezone(UTC), int(offset.total_seconds() // 60))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def week_of(today: date) -> tuple[date, date]:
    """This week so far: Monday to today."""
    return today - timedelta(days=today.isoweekday() - 1), today


def last_week(today: date) -> tuple[date, date]:
    monday = today - timedelta(days=today.isoweekday() - 1 + 7)
    return monday, monday + timedelta(days=6)


def month_of(today: date) -> tuple[date, date]:
    """This month so far: the first to today."""
    return today.replace(day=1), today


def last_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def seven_days(today: date) -> tuple[date, date]:
    """The last seven days, today included (/stats, the weekly chart)."""
    return today - timedelta(days=6), today


@dataclass(frozen=True)
class Scope:
    """Whose numbers: one team (`team_id`), or the whole company (None, admins only)."""

    team_id: int | None
    name: str | None  # the team's name; None for the company


async def scopes_for(session: AsyncSession, actor: Staff) -> list[Scope]:
    """The scopes a person may see reports of: the company and every team for an admin, the
    teams they lead for a manager, nothing for anyone else."""
    if not permissions.receives_reports(actor):
        return []
    if permissions.can_see_company_reports(actor):
        teams = (await session.exec(select(Team).order_by(col(Team.name)))).all()
        return [Scope(None, None), *(Scope(t.id, t.name) for t in teams if t.id is not None)]
    led = await team_leads.teams_led_by(session, actor)
    return [
        Scope(t.id, t.name)
        for t in led
        if t.id is not None and permissions.can_see_reports(actor, t.id)
    ]


async def scope_of(session: AsyncSession, actor: Staff, team_id: int | None) -> Scope:
    """The scope asked for (button data: a claim), checked; Refused when not theirs."""
    if team_id is None:
        if not permissions.can_see_company_reports(actor):
            raise Refused("not_allowed")
        return Scope(None, None)
    team = await session.get(Team, team_id)
    if team is None or not permissions.can_see_reports(actor, team_id):
        raise Refused("not_allowed")
    return Scope(team_id, team.name)


# ---------------------------------------------------------------------------------------------
# the report


@dataclass
class Followups:
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    not_yet_due: int = 0

    @property
    def total(self) -> int:
        return self.on_time + self.late + self.overdue + self.not_yet_due


@dataclass
class SalesRow:
    """One salesperson's period."""

    staff_id: int
    name: str
    visits: int = 0
    followups: Followups = field(default_factory=Followups)
    flagged: int = 0  # on-site visits farther than CHECKIN_RADIUS_M (storage.checkin)


@dataclass
class SeverityRow:
    severity: str
    opened: int = 0
    closed: int = 0
    past_due: int = 0
    avg_hours: float | None = None  # of those closed in the period
    max_hours: float | None = None


@dataclass
class Report:
    scope: Scope
    period: Period
    salespeople: list[SalesRow]
    new_customers: int
    approved: int
    stages: dict[str | None, int]  # live customers by stage now (None: no stage)
    moved_into: dict[str, int]  # visits in the period that moved a customer into the stage
    followups: Followups
    complaints: list[SeverityRow]  # one per severity, critical first
    open_complaints: int  # open now, whatever the period

    @property
    def visits(self) -> int:
        return sum(s.visits for s in self.salespeople)

    @property
    def flagged(self) -> int:
        return sum(s.flagged for s in self.salespeople)

    @property
    def opened(self) -> int:
        return sum(c.opened for c in self.complaints)

    @property
    def closed(self) -> int:
        return sum(c.closed for c in self.complaints)

    @property
    def past_due(self) -> int:
        return sum(c.past_due for c in self.complaints)


def _in_scope(query: Any, scope: Scope) -> Any:
    """Customers of the scope's team (all for the company), live ones only."""
    query = query.where(col(Customer.status).in_(LIVE))
    if scope.team_id is not None:
        query = query.where(col(Customer.team_id) == scope.team_id)
    return query


async def _count(session: AsyncSession, query: Any) -> int:
    return int((await session.exec(query)).one() or 0)


def _followup_query(scope: Scope, period: Period, today: date) -> Any:
    """Follow-ups due in the period, classified, summed per salesperson who set them."""
    later = aliased(Visit)
    next_visit = (
        select(func.min(later.visited_at))
        .where(
            later.customer_id == col(Visit.customer_id),
            later.visited_at > col(Visit.visited_at),
        )
        .correlate(Visit)
        .scalar_subquery()
    )
    due = col(Visit.next_followup_on)
    came_on = local_day(next_visit, period.minutes)

    def total(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    query = (
        select(
            col(Visit.salesperson_id),
            total(and_(next_visit.is_not(None), came_on <= due)),
            total(and_(next_visit.is_not(None), came_on > due)),
            total(and_(next_visit.is_(None), due < today)),
            total(and_(next_visit.is_(None), due >= today)),
        )
        .join(Customer, col(Customer.id) == col(Visit.customer_id))
        .where(due >= period.first, due <= period.last)
        .group_by(col(Visit.salesperson_id))
    )
    return _in_scope(query, scope)


async def followups_by_salesperson(
    session: AsyncSession,
    *,
    scope: Scope,
    period: Period,
    today: date,
    salesperson_id: int | None = None,
) -> dict[int, Followups]:
    """On time, late, overdue and not yet due follow-ups per salesperson (module docstring)."""
    query = _followup_query(scope, period, today)
    if salesperson_id is not None:
        query = query.where(col(Visit.salesperson_id) == salesperson_id)
    rows = (await session.exec(query)).all()
    return {int(staff_id): Followups(*(int(n or 0) for n in counts)) for staff_id, *counts in rows}


async def visits_by_salesperson(
    session: AsyncSession, *, scope: Scope, period: Period, salesperson_id: int | None = None
) -> dict[int, int]:
    query = (
        select(col(Visit.salesperson_id), func.count(col(Visit.id)))
        .join(Customer, col(Customer.id) == col(Visit.customer_id))
        .where(col(Visit.visited_at) >= period.start, col(Visit.visited_at) < period.end)
        .group_by(col(Visit.salesperson_id))
    )
    if salesperson_id is not None:
        query = query.where(col(Visit.salesperson_id) == salesperson_id)
    return {int(s): int(n) for s, n in (await session.exec(_in_scope(query, scope))).all()}


async def flagged_by_salesperson(
    session: AsyncSession, *, scope: Scope, period: Period, salesperson_id: int | None = None
) -> dict[int, int]:
    """Flagged check-ins: visits in the period saved farther than the radius from their
    customer's location (`Visit.checkin_flagged`), by who made them."""
    query = (
        select(col(Visit.salesperson_id), func.count(col(Visit.id)))
        .join(Customer, col(Customer.id) == col(Visit.customer_id))
        .where(
            col(Visit.visited_at) >= period.start,
            col(Visit.visited_at) < period.end,
            col(Visit.checkin_flagged).is_(True),
        )
        .group_by(col(Visit.salesperson_id))
    )
    if salesperson_id is not None:
        query = query.where(col(Visit.salesperson_id) == salesperson_id)
    return {int(s): int(n) for s, n in (await session.exec(_in_scope(query, scope))).all()}


async def _salespeople(session: AsyncSession, scope: Scope, ids: set[int]) -> dict[int, str]:
    """Names of the scope's active salespeople, and of anyone else who has numbers in it."""
    query = select(Staff.id, Staff.display_name).where(
        or_(
            and_(
                col(Staff.active).is_(True),
                col(Staff.role) == Role.salesperson,
                *([col(Staff.team_id) == scope.team_id] if scope.team_id is not None else []),
            ),
            col(Staff.id).in_(sorted(ids)),
        )
    )
    return {int(i): name for i, name in (await session.exec(query)).all() if i is not None}


async def _complaints(session: AsyncSession, scope: Scope, period: Period) -> list[SeverityRow]:
    by: dict[str, SeverityRow] = {s.value: SeverityRow(s.value) for s in SEVERITIES}

    def joined(*columns: Any) -> Any:
        query = select(col(Complaint.severity), *columns).join(
            Customer, col(Customer.id) == col(Complaint.customer_id)
        )
        return _in_scope(query, scope).group_by(col(Complaint.severity))

    opened = joined(func.count(col(Complaint.id))).where(
        col(Complaint.received_at) >= period.start, col(Complaint.received_at) < period.end
    )
    for severity, n in (await session.exec(opened)).all():
        by.setdefault(severity, SeverityRow(severity)).opened = int(n)
    took = hours_between(col(Complaint.received_at), col(Complaint.closed_at))
    closed = joined(func.count(col(Complaint.id)), func.avg(took), func.max(took)).where(
        col(Complaint.status) == ComplaintStatus.closed,
        col(Complaint.closed_at) >= period.start,
        col(Complaint.closed_at) < period.end,
    )
    for severity, n, average, longest in (await session.exec(closed)).all():
        row = by.setdefault(severity, SeverityRow(severity))
        row.closed = int(n)
        row.avg_hours = None if average is None else float(average)
        row.max_hours = None if longest is None else float(longest)
    past_due = joined(func.count(col(Complaint.id))).where(
        col(Complaint.due_at) >= period.start,
        col(Complaint.due_at) < period.end,
        or_(
            col(Complaint.closed_at).is_(None),
            col(Complaint.closed_at) > col(Complaint.due_at),
            col(Complaint.status).in_(OPEN_COMPLAINTS),
        ),
    )
    for severity, n in (await session.exec(past_due)).all():
        by.setdefault(severity, SeverityRow(severity)).past_due = int(n)
    return list(by.values())


async def build(
    session: AsyncSession, *, actor: Staff, team_id: int | None, period: Period, today: date
) -> Report:
    """The report of `team_id` (None: the company) for `period`, if `actor` may see it."""
    if not permissions.receives_reports(actor):
        raise Refused("not_allowed")
    scope = await scope_of(session, actor, team_id)
    return await _build(session, scope=scope, period=period, today=today)


async def _build(session: AsyncSession, *, scope: Scope, period: Period, today: date) -> Report:
    visits = await visits_by_salesperson(session, scope=scope, period=period)
    followups = await followups_by_salesperson(session, scope=scope, period=period, today=today)
    flagged = await flagged_by_salesperson(session, scope=scope, period=period)
    names = await _salespeople(session, scope, set(visits) | set(followups))
    people = [
        SalesRow(
            staff_id,
            name,
            visits.get(staff_id, 0),
            followups.get(staff_id, Followups()),
            flagged.get(staff_id, 0),
        )
        for staff_id, name in names.items()
    ]
    people.sort(key=lambda p: (-p.visits, -p.followups.total, p.name, p.staff_id))
    totals = Followups()
    for person in people:
        for name in ("on_time", "late", "overdue", "not_yet_due"):
            setattr(totals, name, getattr(totals, name) + getattr(person.followups, name))

    new = await _count(
        session,
        _in_scope(
            select(func.count(col(Customer.id))).where(
                col(Customer.created_at) >= period.start, col(Customer.created_at) < period.end
            ),
            scope,
        ),
    )
    approved = await _count(
        session,
        _in_scope(
            select(func.count(col(Customer.id))).where(
                col(Customer.approved_at) >= period.start,
                col(Customer.approved_at) < period.end,
                col(Customer.status) == RecordStatus.approved,
            ),
            scope,
        ),
    )
    stage_rows = await session.exec(
        _in_scope(
            select(col(Customer.stage), func.count(col(Customer.id))).group_by(col(Customer.stage)),
            scope,
        )
    )
    stages: dict[str | None, int] = dict.fromkeys(STAGES, 0)
    for stage, n in stage_rows.all():
        stages[stage if stage in stages else None] += int(n)
    moves = await session.exec(
        _in_scope(
            select(col(Visit.stage_change), func.count(col(Visit.id)))
            .join(Customer, col(Customer.id) == col(Visit.customer_id))
            .where(
                col(Visit.stage_change).is_not(None),
                col(Visit.visited_at) >= period.start,
                col(Visit.visited_at) < period.end,
            )
            .group_by(col(Visit.stage_change)),
            scope,
        )
    )
    moved_into = {s.value: 0 for s in Stage}
    for stage, n in moves.all():
        if stage in moved_into:
            moved_into[stage] = int(n)
    open_now = await _count(
        session,
        _in_scope(
            select(func.count(col(Complaint.id)))
            .join(Customer, col(Customer.id) == col(Complaint.customer_id))
            .where(col(Complaint.status).in_(OPEN_COMPLAINTS)),
            scope,
        ),
    )
    return Report(
        scope=scope,
        period=period,
        salespeople=people,
        new_customers=new,
        approved=approved,
        stages=stages,
        moved_into=moved_into,
        followups=totals,
        complaints=await _complaints(session, scope, period),
        open_complaints=open_now,
    )


async def reports_for(
    session: AsyncSession, *, actor: Staff, period: Period, today: date
) -> list[Report]:
    """The weekly chart's reports: the company's for an admin, each led team's for a manager."""
    scopes = await scopes_for(session, actor)
    if permissions.can_see_company_reports(actor):
        scopes = scopes[:1]
    return [await _build(session, scope=s, period=period, today=today) for s in scopes]


# ---------------------------------------------------------------------------------------------
# /stats: a person's own week


@dataclass(frozen=True)
class OwnWeek:
    period: Period
    visits: int
    due: int  # own live customers whose next follow-up falls in the coming seven days
    overdue: int  # own live customers whose follow-up date passed without a visit since
    followups: Followups  # the discipline of the follow-ups due in the period
    open_complaints: int  # of own customers, or handled by them
    complaints_past_due: int


async def own_week(
    session: AsyncSession, *, actor: Staff, period: Period, today: date, now: datetime
) -> OwnWeek:
    """A person's own numbers (SPEC section 4: salespeople get their own /stats only)."""
    if not permissions.can_see_own_stats(actor) or actor.id is None:
        raise Refused("not_allowed")
    everyone = Scope(None, None)
    me = actor.id
    visits = await visits_by_salesperson(session, scope=everyone, period=period, salesperson_id=me)
    followups = await followups_by_salesperson(
        session, scope=everyone, period=period, today=today, salesperson_id=me
    )
    own = select(func.count(col(Customer.id))).where(
        col(Customer.owner_id) == me, col(Customer.status).in_(LIVE)
    )
    due = await _count(
        session,
        own.where(
            col(Customer.next_followup_on) >= today,
            col(Customer.next_followup_on) <= today + timedelta(days=6),
        ),
    )
    overdue = await _count(
        session,
        own.where(
            col(Customer.next_followup_on) < today,
            or_(
                col(Customer.last_visit_on).is_(None),
                col(Customer.last_visit_on) < col(Customer.next_followup_on),
            ),
        ),
    )
    mine = (
        select(func.count(col(Complaint.id)))
        .join(Customer, col(Customer.id) == col(Complaint.customer_id))
        .where(
            col(Complaint.status).in_(OPEN_COMPLAINTS),
            col(Customer.status).in_(LIVE),
            or_(col(Customer.owner_id) == me, col(Complaint.handler_id) == me),
        )
    )
    return OwnWeek(
        period=period,
        visits=visits.get(me, 0),
        due=due,
        overdue=overdue,
        followups=followups.get(me, Followups()),
        open_complaints=await _count(session, mine),
        complaints_past_due=await _count(session, mine.where(col(Complaint.due_at) < now)),
    )
