"""Reminders (SPEC section 7): what is due, computed from the records, and the outbox.

The database decides what is due (STYLE habit 5); the scheduler only wakes up and asks.

Planning turns records into outbox rows (`Reminder`), one per (kind, subject, recipient, period)
under a unique `dedup_key`, inserted with ON CONFLICT DO NOTHING: planning twice, or two bot
processes planning at once, creates nothing new. The large planners (follow-ups and their
escalation) find only what has no row yet with an anti-join on `ix_reminders_subject`, so a poll
over a million customers reads a few days' worth of index entries and writes nothing when
nothing is new. Each planner remembers when it last ran (`ReminderPlanRun`), so after a
restart it catches up from there (at most REMINDER_CATCHUP_DAYS): late rather than never.

Delivery (bot/sender.py) claims due rows with a conditional UPDATE pending → sending that
carries a lease (`next_attempt_at`), sends, and only then marks them sent. Why at-least-once:
if the process dies between Telegram's answer and our commit, the row is still `sending`; its
lease runs out and the next run sends it again. So a crash can repeat the few messages in flight
at that instant, once; marking rows sent *before* sending would lose them instead. The claim is
conditional, so two runs or two processes never send the same row in normal operation.

Payloads and keys hold ids, kinds and periods, never personal data: a birthday reminder is keyed
by the year, and its text is rendered at delivery from the sealed value. Its due time still
hints at the day, so sent birthday rows are purged soon after their window has passed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Date, and_, delete, exists, func, or_, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, outbox, permissions, vault
from storage.crypto import DecryptionError, Keyring
from storage.customers import visible_customer
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import (
    ChangeRecord,
    Complaint,
    ComplaintStatus,
    Customer,
    DataKey,
    KeyPerson,
    RecordStatus,
    Reminder,
    ReminderPlanRun,
    ReminderStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
    Staff,
    Team,
    Visit,
)

log = logging.getLogger(__name__)


class Kind(StrEnum):
    followup = "followup"  # the owner's follow-up is due (today, or overdue)
    overdue = "overdue"  # a follow-up overdue by OVERDUE_ESCALATION_DAYS → the team's managers
    review = "review"  # still pending after REVIEW_REMINDER_HOURS → whoever may decide it
    review_digest = "review_digest"  # every morning: all pending reviews one may decide
    rejected = "rejected"  # rejected, not resubmitted after REJECTED_REMINDER_DAYS → submitter
    complaint_soon = "complaint_soon"  # due within COMPLAINT_WARNING_HOURS → handler, managers
    complaint_overdue = "complaint_overdue"  # past its due time → handler, managers
    birthday = "birthday"  # a key person's birthday, BIRTHDAY_NOTICE_DAYS before and on the day
    stale = "stale"  # approved, not checked for STALE_RECORD_DAYS → owner confirms
    survey = "survey"  # every SURVEY_INTERVAL_DAYS of cooperation → owner asks the customer
    weekly = "weekly"  # the week in numbers → managers and admins
    audit_head = "audit_head"  # every AUDIT_HEAD_DAYS: the audit log's head (id, MAC) → admins


# Buttons each kind offers (conversations/reminders.py draws them; the actions below check them).
ACTIONS: dict[str, tuple[str, ...]] = {
    Kind.followup: ("visit", "done", "snooze", "reschedule"),
    Kind.review: ("approve", "reject", "open_review"),
    Kind.rejected: ("resubmit", "done", "snooze"),
    Kind.stale: ("confirm", "snooze"),
    Kind.survey: ("done", "snooze"),
}
SNOOZE_DAYS = (1, 3)
RESCHEDULE_DAYS = (1, 3, 7, 14)
MAX_RESCHEDULE_DAYS = 366
# customers whose follow-ups matter: not drafts, not archived or destroyed
LIVE = (RecordStatus.pending, RecordStatus.approved, RecordStatus.rejected)
OPEN_COMPLAINTS = (ComplaintStatus.open, ComplaintStatus.in_progress, ComplaintStatus.reopened)
RESUBMITTABLE = (
    ReviewKind.customer_new,
    ReviewKind.customer_change,
    ReviewKind.complaint_resolution,
)
FINAL_ACTS = ("done", "confirmed", "rescheduled")
HEAVY_EVERY = timedelta(hours=6)  # birthdays: every key person is decrypted
DAILY = timedelta(days=1)  # records to re-check, surveys, clean-up
PER_OWNER_PER_RUN = 5  # re-check / survey prompts per person a day, so a backlog trickles in
INSERT_CHUNK = 500
SCAN_CHUNK = 2000
DIGEST_LINES = 15


# ---------------------------------------------------------------------------------------------
# rules and time


@dataclass(frozen=True)
class Rules:
    """The settings reminders follow, so storage needs nothing from the bot's settings class."""

    timezone: str = "Asia/Shanghai"
    followup_hour: int = 9
    digest_hour: int = 9
    quiet_hours: str = "21-8"
    cycles: dict[str, int] = field(default_factory=lambda: {"A": 7, "B": 14, "C": 30, "D": 60})
    overdue_days: int = 3
    review_hours: int = 24
    rejected_days: int = 3
    complaint_warning_hours: int = 24
    birthday_days: int = 3
    stale_days: int = 180
    survey_days: int = 365
    weekly_weekday: int = 1  # ISO: 1 = Monday
    catchup_days: int = 7
    audit_head_days: int = 1  # 0: never

    @classmethod
    def from_settings(cls, settings: Any) -> Rules:
        return cls(
            timezone=settings.TIMEZONE,
            followup_hour=settings.FOLLOWUP_HOUR,
            digest_hour=settings.DIGEST_HOUR,
            quiet_hours=settings.QUIET_HOURS,
            cycles=dict(settings.followup_cycles),
            overdue_days=settings.OVERDUE_ESCALATION_DAYS,
            review_hours=settings.REVIEW_REMINDER_HOURS,
            rejected_days=settings.REJECTED_REMINDER_DAYS,
            complaint_warning_hours=settings.COMPLAINT_WARNING_HOURS,
            birthday_days=settings.BIRTHDAY_NOTICE_DAYS,
            stale_days=settings.STALE_RECORD_DAYS,
            survey_days=settings.SURVEY_INTERVAL_DAYS,
            weekly_weekday=settings.WEEKLY_SUMMARY_WEEKDAY,
            catchup_days=settings.REMINDER_CATCHUP_DAYS,
            audit_head_days=settings.AUDIT_HEAD_DAYS,
        )

    def zone_of(self, staff: Staff | None) -> tzinfo:
        return zone(staff.timezone if staff else None, self.timezone)

    def quiet_of(self, staff: Staff | None) -> tuple[int, int] | None:
        """The person's quiet hours; their own setting wins, an empty one means none."""
        value = staff.quiet_hours if staff is not None and staff.quiet_hours is not None else None
        return hours_range(self.quiet_hours if value is None else value)

    def today_of(self, staff: Staff | None, now: datetime) -> date:
        return now.astimezone(self.zone_of(staff)).date()

    def cycle(self, customer_class: str | None) -> int:
        return self.cycles.get(customer_class or "C", 30)


@lru_cache(maxsize=256)
def zone(name: str | None, default: str) -> tzinfo:
    """The IANA zone `name`, else `default`, else UTC; a bad name is logged, never fatal."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("unknown time zone %r; using the default", candidate)
    return UTC


def hours_range(value: str | None) -> tuple[int, int] | None:
    """`21-8` → (21, 8); None for empty or malformed (then there are no quiet hours)."""
    start, dash, end = (value or "").strip().partition("-")
    if not dash or not start.strip().isdigit() or not end.strip().isdigit():
        return None
    first, last = int(start), int(end)
    if not (0 <= first <= 23 and 0 <= last <= 23) or first == last:
        return None
    return first, last


def local_moment(day: date, hour: int, tz: tzinfo) -> datetime:
    """`hour` o'clock on `day` in `tz`, as UTC (a time skipped by DST moves forward)."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def quiet_until(moment: datetime, tz: tzinfo, quiet: tuple[int, int] | None) -> datetime | None:
    """When the quiet hours around `moment` end (UTC), or None if it is not in them."""
    if quiet is None:
        return None
    start, end = quiet
    local = moment.astimezone(tz)
    inside = start <= local.hour < end if start < end else local.hour >= start or local.hour < end
    if not inside:
        return None
    finish = datetime.combine(local.date(), time(end), tzinfo=tz)
    if finish <= local:
        finish = datetime.combine(local.date() + timedelta(days=1), time(end), tzinfo=tz)
    return finish.astimezone(UTC)


def _plus_days(column: Any, days: int, dialect: str) -> Any:
    """`column + days` for a DATE column, in the dialect's own words (a date both ways)."""
    if dialect == "sqlite":
        return type_coerce(func.date(column, f"+{days} days"), Date)
    return type_coerce(column + days, Date)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class _Plan:
    """What every planner needs: the time, the rules, and the staff (a few hundred rows)."""

    rules: Rules
    keyring: Keyring
    now: datetime
    since: datetime
    staff: dict[int, Staff]

    @property
    def lo(self) -> date:
        """First day a planner looks at: the day before its last run (or the catch-up limit)."""
        return self.since.astimezone(UTC).date() - timedelta(days=1)

    @property
    def hi(self) -> date:
        """Last day: tomorrow, so a morning reminder is in place before its hour in every zone."""
        return self.now.astimezone(UTC).date() + timedelta(days=1)

    def active(self, staff_id: int | None) -> Staff | None:
        person = self.staff.get(staff_id) if staff_id is not None else None
        return person if person is not None and person.active else None

    def managers(self, team_id: int | None) -> list[Staff]:
        return [s for s in self.staff.values() if permissions.manages_team(s, team_id)]

    def at(self, staff: Staff, day: date, hour: int) -> datetime:
        return local_moment(day, hour, self.rules.zone_of(staff))

    def next_morning(self, staff: Staff) -> datetime:
        """The person's next FOLLOWUP_HOUR: prompts without a day of their own wait for it."""
        today = self.rules.today_of(staff, self.now)
        moment = self.at(staff, today, self.rules.followup_hour)
        if moment < self.now:
            moment = self.at(staff, today + timedelta(days=1), self.rules.followup_hour)
        return moment


def deciders(
    staff: Iterable[Staff], *, team_id: int | None, submitted_by: int | None
) -> list[Staff]:
    """Who may decide a review: the team's active managers, else the admins; never the submitter
    (the same routing as storage.reviews)."""
    people = [s for s in staff if s.active and s.id != submitted_by]
    managers = [s for s in people if permissions.manages_team(s, team_id)]
    return managers or [s for s in people if permissions.is_admin(s)]


def _key(
    kind: str, subject_type: str, subject_id: int | None, recipient_id: int, period: str
) -> str:
    return f"{kind}:{subject_type}:{subject_id or 0}:{recipient_id}:{period}"


def _row(
    ctx: _Plan,
    kind: str,
    subject_type: str,
    subject_id: int | None,
    recipient_id: int,
    period: str,
    due_at: datetime,
    *,
    period_on: date | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "dedup_key": _key(kind, subject_type, subject_id, recipient_id, period),
        "kind": kind,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "recipient_id": recipient_id,
        "due_at": due_at,
        "next_attempt_at": due_at,
        "status": ReminderStatus.pending,
        "attempts": 0,
        "period_on": period_on,
        "payload": json.dumps(payload, sort_keys=True) if payload else None,
        "created_at": ctx.now,
        "updated_at": ctx.now,
    }


async def add_reminders(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows, skipping any whose dedup key exists; returns how many are new."""
    if not rows:
        return 0
    dialect = _dialect(session)
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    table = Reminder.__table__  # type: ignore[attr-defined]
    created = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        statement = (
            insert(table).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)
        )
        result = await session.exec(statement, params=list(rows[start : start + INSERT_CHUNK]))
        created += len(result.all())
    return created


async def _new_only(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose key is not taken yet: a read, so a poll with nothing new writes nothing."""
    if not rows:
        return []
    taken: set[str] = set()
    keys = [r["dedup_key"] for r in rows]
    for start in range(0, len(keys), INSERT_CHUNK):
        chunk = keys[start : start + INSERT_CHUNK]
        found = await session.exec(
            select(Reminder.dedup_key).where(col(Reminder.dedup_key).in_(chunk))
        )
        taken.update(found.all())
    return [r for r in rows if r["dedup_key"] not in taken]


async def _insert_chunked(sessions: SessionFactory, rows: list[dict[str, Any]]) -> int:
    """Insert many rows in short transactions, so the bot's own writes never wait long."""
    created = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        async with unit_of_work(sessions) as session:
            created += await add_reminders(session, rows[start : start + INSERT_CHUNK])
    return created


def _unindexed(column: Any, dialect: str) -> Any:
    """`+column` on SQLite: keeps its planner off that column's index.

    Without statistics (nobody runs ANALYZE on a bot's SQLite file) SQLite would rather read
    the status index, where every live customer matches, than the follow-up date range, which
    holds a few days' worth. PostgreSQL keeps statistics and gets the column as it is.
    """
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _followup_sources(
    lo: date, hi: date, cycles: dict[str, int], dialect: str
) -> list[tuple[Any, list[Any]]]:
    """(follow-up date expression, conditions) for each way a follow-up date arises: the
    customer's next follow-up date (read from ix_customers_next_followup_on), or, without one,
    its class cycle after the last visit (ix_customers_last_visit_on). Either way a date range
    of an index: a few days' worth of customers, however many there are."""
    live = _unindexed(col(Customer.status), dialect).in_(LIVE)
    sources: list[tuple[Any, list[Any]]] = [
        (
            col(Customer.next_followup_on),
            [
                col(Customer.next_followup_on) >= lo,
                col(Customer.next_followup_on) <= hi,
                or_(
                    col(Customer.last_visit_on).is_(None),
                    col(Customer.last_visit_on) < col(Customer.next_followup_on),
                ),
                live,
            ],
        )
    ]
    for customer_class, days in sorted(cycles.items()):
        sources.append(
            (
                _plus_days(col(Customer.last_visit_on), days, dialect),
                [
                    _unindexed(col(Customer.next_followup_on), dialect).is_(None),
                    _unindexed(col(Customer.customer_class), dialect) == customer_class,
                    col(Customer.last_visit_on) >= lo - timedelta(days=days),
                    col(Customer.last_visit_on) <= hi - timedelta(days=days),
                    live,
                ],
            )
        )
    return sources


def _no_reminder(kind: str, on: Any, recipient: Any) -> Any:
    """NOT EXISTS a reminder of `kind` about this customer for that day and recipient."""
    return ~exists().where(
        col(Reminder.subject_id) == col(Customer.id),
        col(Reminder.kind) == kind,
        col(Reminder.period_on) == on,
        col(Reminder.recipient_id) == recipient,
    )


def followup_query(lo: date, hi: date, cycles: dict[str, int], dialect: str) -> list[Any]:
    """Due-follow-up queries (one per source): customers of active owners, follow-up date in
    [lo, hi], no reminder yet. Public so the benchmark can show their plans."""
    queries = []
    for on, conditions in _followup_sources(lo, hi, cycles, dialect):
        queries.append(
            select(Customer.id, Customer.owner_id, on)
            .join(Staff, col(Staff.id) == col(Customer.owner_id))
            .where(
                *conditions,
                col(Staff.active).is_(True),
                _no_reminder(Kind.followup, on, col(Customer.owner_id)),
            )
        )
    return queries


def overdue_query(lo: date, hi: date, rules: Rules, dialect: str) -> list[Any]:
    """Follow-ups whose date plus OVERDUE_ESCALATION_DAYS falls in [lo, hi], per manager of the
    customer's team (not the owner) who has no escalation of it yet."""
    shift = timedelta(days=rules.overdue_days)
    manager = aliased(Staff)
    queries = []
    for on, conditions in _followup_sources(lo - shift, hi - shift, rules.cycles, dialect):
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
                _no_reminder(Kind.overdue, on, col(manager.id)),
            )
        )
    return queries


async def _plan_followups(sessions: SessionFactory, ctx: _Plan) -> int:
    rows = []
    async with unit_of_work(sessions) as session:
        dialect = _dialect(session)
        for query in followup_query(ctx.lo, ctx.hi, ctx.rules.cycles, dialect):
            for customer_id, owner_id, on in (await session.exec(query)).all():
                owner = ctx.active(owner_id)
                if owner is None or on is None:
                    continue
                due = ctx.at(owner, on, ctx.rules.followup_hour)
                rows.append(
                    _row(
                        ctx,
                        Kind.followup,
                        "customer",
                        customer_id,
                        owner_id,
                        on.isoformat(),
                        due,
                        period_on=on,
                    )
                )
    return await _insert_chunked(sessions, rows)


async def _plan_overdue(sessions: SessionFactory, ctx: _Plan) -> int:
    rows = []
    shift = timedelta(days=ctx.rules.overdue_days)
    async with unit_of_work(sessions) as session:
        dialect = _dialect(session)
        for query in overdue_query(ctx.lo, ctx.hi, ctx.rules, dialect):
            for customer_id, _owner, manager_id, on in (await session.exec(query)).all():
                manager = ctx.active(manager_id)
                if manager is None or on is None:
                    continue
                due = ctx.at(manager, on + shift, ctx.rules.digest_hour)
                rows.append(
                    _row(
                        ctx,
                        Kind.overdue,
                        "customer",
                        customer_id,
                        manager_id,
                        on.isoformat(),
                        due,
                        period_on=on,
                    )
                )
    return await _insert_chunked(sessions, rows)


async def _plan_reviews(sessions: SessionFactory, ctx: _Plan) -> int:
    """A reminder per decider once a review waited REVIEW_REMINDER_HOURS, and each decider's
    morning digest while something waits for them."""
    wait = timedelta(hours=ctx.rules.review_hours)
    rows = []
    async with unit_of_work(sessions) as session:
        pending = (
            await session.exec(select(Review).where(col(Review.status) == ReviewStatus.pending))
        ).all()
        earliest: dict[int, datetime] = {}
        routes: dict[tuple[int | None, int], list[Staff]] = {}
        for review in pending:
            route = (review.team_id, review.submitted_by)
            if route not in routes:
                routes[route] = deciders(
                    ctx.staff.values(), team_id=review.team_id, submitted_by=review.submitted_by
                )
            people = routes[route]
            for person in people:
                assert person.id is not None
                earliest[person.id] = min(
                    earliest.get(person.id, review.submitted_at), review.submitted_at
                )
                due = review.submitted_at + wait
                if due <= ctx.now + timedelta(days=1):
                    rows.append(_row(ctx, Kind.review, "review", review.id, person.id, "once", due))
        for person_id, first in earliest.items():
            person = ctx.staff[person_id]
            today = ctx.rules.today_of(person, ctx.now)
            due = ctx.at(person, today, ctx.rules.digest_hour)
            if first <= due:  # only what was already waiting at the digest hour
                rows.append(
                    _row(
                        ctx,
                        Kind.review_digest,
                        "staff",
                        person_id,
                        person_id,
                        today.isoformat(),
                        due,
                    )
                )
        rows = await _new_only(session, rows)
        return await add_reminders(session, rows)


async def _plan_rejected(sessions: SessionFactory, ctx: _Plan) -> int:
    """Rejections nobody acted on for REJECTED_REMINDER_DAYS → the submitter, once."""
    wait = timedelta(days=ctx.rules.rejected_days)
    rows = []
    async with unit_of_work(sessions) as session:
        rejected = (
            await session.exec(
                select(Review).where(
                    col(Review.status) == ReviewStatus.rejected,
                    col(Review.kind).in_(RESUBMITTABLE),
                    col(Review.decided_at) <= ctx.now - wait,
                    col(Review.decided_at) >= ctx.since - wait - timedelta(days=1),
                )
            )
        ).all()
        for review in rejected:
            submitter = ctx.active(review.submitted_by)
            if submitter is None or review.decided_at is None:
                continue
            if await _resubmitted(session, review):
                continue
            rows.append(
                _row(
                    ctx,
                    Kind.rejected,
                    "review",
                    review.id,
                    review.submitted_by,
                    "once",
                    review.decided_at + wait,
                )
            )
        rows = await _new_only(session, rows)
        return await add_reminders(session, rows)


async def _resubmitted(session: AsyncSession, review: Review) -> bool:
    """Has anything been submitted about the same record since this review was decided?"""
    if review.kind == ReviewKind.complaint_resolution:
        same = col(Review.complaint_id) == review.complaint_id
    else:
        same = and_(
            col(Review.customer_id) == review.customer_id,
            col(Review.kind).in_((ReviewKind.customer_new, ReviewKind.customer_change)),
        )
    later = await session.exec(
        select(Review.id).where(same, col(Review.submitted_at) > review.decided_at).limit(1)
    )
    return later.first() is not None


def _complaint_people(ctx: _Plan, complaint: Complaint, team_id: int | None) -> list[Staff]:
    people = [ctx.active(complaint.handler_id or complaint.received_by)]
    people += ctx.managers(team_id)
    seen: dict[int, Staff] = {}
    for person in people:
        if person is not None and person.id is not None:
            seen.setdefault(person.id, person)
    return list(seen.values())


def complaint_warning_at(complaint: Complaint, warning_hours: int) -> datetime:
    """When to warn that a complaint is nearly due: COMPLAINT_WARNING_HOURS before, but never
    earlier than halfway through its time (a 24-hour complaint is not 'nearly due' at once)."""
    halfway = complaint.received_at + (complaint.due_at - complaint.received_at) / 2
    return max(complaint.due_at - timedelta(hours=warning_hours), halfway)


async def _plan_complaints(sessions: SessionFactory, ctx: _Plan) -> int:
    rows = []
    horizon = ctx.now + timedelta(hours=ctx.rules.complaint_warning_hours, days=1)
    async with unit_of_work(sessions) as session:
        found = (
            await session.exec(
                select(Complaint, Customer.team_id)
                .join(Customer, col(Customer.id) == col(Complaint.customer_id))
                .where(
                    col(Complaint.status).in_(OPEN_COMPLAINTS),
                    col(Complaint.due_at) <= horizon,
                    col(Customer.status) != RecordStatus.destroyed,
                )
            )
        ).all()
        for complaint, team_id in found:
            period = complaint.due_at.astimezone(UTC).strftime("%Y%m%dT%H%M")
            warn_at = complaint_warning_at(complaint, ctx.rules.complaint_warning_hours)
            for person in _complaint_people(ctx, complaint, team_id):
                assert person.id is not None
                if ctx.now < complaint.due_at:
                    rows.append(
                        _row(
                            ctx,
                            Kind.complaint_soon,
                            "complaint",
                            complaint.id,
                            person.id,
                            period,
                            warn_at,
                        )
                    )
                rows.append(
                    _row(
                        ctx,
                        Kind.complaint_overdue,
                        "complaint",
                        complaint.id,
                        person.id,
                        period,
                        complaint.due_at,
                    )
                )
        rows = await _new_only(session, rows)
        return await add_reminders(session, rows)


def parse_birthday(value: Any) -> tuple[int, int] | None:
    """(month, day) of a stored birthday (`YYYY-MM-DD`, or `MM-DD` without a year)."""
    text = str(value or "").strip().lstrip("-")
    parts = text.split("-")
    try:
        if len(parts) == 3:
            when = date.fromisoformat(text)
            return when.month, when.day
        if len(parts) == 2:
            month, day = int(parts[0]), int(parts[1])
            date(2000, month, day)  # a leap year, so 02-29 is valid
            return month, day
    except ValueError:
        return None
    return None


def birthday_in(year: int, month: int, day: int) -> date:
    """The birthday in `year`; 29 February falls on the 28th in other years."""
    if month == 2 and day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return date(year, month, day)


def birthday_notices(
    month: int, day: int, lo: date, hi: date, notice_days: int
) -> list[tuple[date, date, str]]:
    """(notice day, birthday, when) for the notices falling in [lo, hi]: `before` and `day`."""
    found = []
    for year in range(lo.year - 1, hi.year + 2):
        birthday = birthday_in(year, month, day)
        for when, notice in (
            ("before", birthday - timedelta(days=notice_days)),
            ("day", birthday),
        ):
            if lo <= notice <= hi:
                found.append((notice, birthday, when))
    return found


async def _plan_birthdays(sessions: SessionFactory, ctx: _Plan) -> int:
    """Scan key persons in chunks (each its own short transaction), opening each customer's data
    key once per chunk; only customers with key persons are touched."""
    created, after = 0, 0
    while True:
        rows = []
        async with unit_of_work(sessions) as session:
            chunk = (
                await session.exec(
                    select(
                        KeyPerson.id,
                        KeyPerson.customer_id,
                        KeyPerson.sealed,
                        Customer.owner_id,
                        DataKey.kek_id,
                        DataKey.wrapped,
                    )
                    .join(Customer, col(Customer.id) == col(KeyPerson.customer_id))
                    .join(DataKey, col(DataKey.customer_id) == col(KeyPerson.customer_id))
                    .where(
                        col(KeyPerson.id) > after,
                        col(KeyPerson.sealed).is_not(None),
                        col(Customer.status).in_(LIVE),
                        col(DataKey.wrapped).is_not(None),
                    )
                    .order_by(col(KeyPerson.id))
                    .limit(SCAN_CHUNK)
                )
            ).all()
            if not chunk:
                return created
            keys: dict[int, bytes | None] = {}
            for person_id, customer_id, sealed, owner_id, kek_id, wrapped in chunk:
                assert person_id is not None
                after = person_id
                owner = ctx.active(owner_id)
                if owner is None:
                    continue
                if customer_id not in keys:
                    try:
                        keys[customer_id] = ctx.keyring.unwrap(
                            kek_id, wrapped, customer_id=customer_id
                        )
                    except DecryptionError:
                        keys[customer_id] = None
                key = keys[customer_id]
                if key is None:
                    continue
                try:
                    opened = vault.unseal(key, sealed, table="key_persons", row_id=person_id) or {}
                except DecryptionError:
                    log.warning("key person %s: birthday could not be opened", person_id)
                    continue
                parsed = parse_birthday(opened.get("birthday"))
                if parsed is None:
                    continue
                for notice, birthday, when in birthday_notices(
                    *parsed, ctx.lo, ctx.hi, ctx.rules.birthday_days
                ):
                    due = ctx.at(owner, notice, ctx.rules.followup_hour)
                    period = f"{birthday.year}-{when}"
                    rows.append(
                        _row(
                            ctx,
                            Kind.birthday,
                            "key_person",
                            person_id,
                            owner_id,
                            period,
                            due,
                            payload={"when": when},
                        )
                    )
            created += await add_reminders(session, rows)


def _capped_per_owner(query: Any, order: Any, limit: int) -> Any:
    """Keep at most `limit` rows per owner, in `order`: a backlog arrives a few at a time."""
    ranked = query.add_columns(
        func.row_number().over(partition_by=col(Customer.owner_id), order_by=order).label("rank")
    ).subquery()
    return select(*(c for c in ranked.c if c.name != "rank")).where(ranked.c.rank <= limit)


async def _plan_stale(sessions: SessionFactory, ctx: _Plan) -> int:
    """Approved records nobody confirmed for STALE_RECORD_DAYS → the owner, a few a day."""
    basis = func.coalesce(col(Customer.last_checked_at), col(Customer.approved_at))
    cutoff = ctx.now - timedelta(days=ctx.rules.stale_days)
    query = (
        select(Customer.id, Customer.owner_id, basis.label("basis"))
        .join(Staff, col(Staff.id) == col(Customer.owner_id))
        .where(
            col(Customer.status) == RecordStatus.approved,
            col(Staff.active).is_(True),
            basis <= cutoff,
            ~exists().where(
                col(Reminder.subject_id) == col(Customer.id),
                col(Reminder.kind) == Kind.stale,
                col(Reminder.created_at) >= basis,
            ),
        )
    )
    rows = []
    async with unit_of_work(sessions) as session:
        for record in (
            await session.exec(_capped_per_owner(query, basis, PER_OWNER_PER_RUN))
        ).all():
            customer_id, owner_id = record[0], record[1]
            checked = record[2]
            owner = ctx.active(owner_id)
            if owner is None or checked is None:
                continue
            if isinstance(checked, str):  # SQLite returns COALESCE of timestamps as text
                checked = datetime.fromisoformat(checked)
            due = ctx.next_morning(owner)
            period = checked.date().isoformat()
            rows.append(_row(ctx, Kind.stale, "customer", customer_id, owner_id, period, due))
    return await _insert_chunked(sessions, rows)


async def _plan_surveys(sessions: SessionFactory, ctx: _Plan) -> int:
    """A satisfaction-survey prompt per approved customer every SURVEY_INTERVAL_DAYS."""
    interval = timedelta(days=ctx.rules.survey_days)
    query = (
        select(Customer.id, Customer.owner_id, Customer.approved_at)
        .join(Staff, col(Staff.id) == col(Customer.owner_id))
        .where(
            col(Customer.status) == RecordStatus.approved,
            col(Staff.active).is_(True),
            col(Customer.approved_at) <= ctx.now - interval,
            ~exists().where(
                col(Reminder.subject_id) == col(Customer.id),
                col(Reminder.kind) == Kind.survey,
                col(Reminder.created_at) > ctx.now - interval,
            ),
        )
    )
    rows = []
    async with unit_of_work(sessions) as session:
        ranked = _capped_per_owner(query, col(Customer.approved_at), PER_OWNER_PER_RUN)
        for record in (await session.exec(ranked)).all():
            customer_id, owner_id, approved_at = record[0], record[1], record[2]
            owner = ctx.active(owner_id)
            if owner is None or approved_at is None:
                continue
            if isinstance(approved_at, str):
                approved_at = datetime.fromisoformat(approved_at).replace(tzinfo=UTC)
            cycle = max(1, (ctx.now - approved_at).days // ctx.rules.survey_days)
            due = ctx.next_morning(owner)
            rows.append(_row(ctx, Kind.survey, "customer", customer_id, owner_id, str(cycle), due))
    return await _insert_chunked(sessions, rows)


async def _plan_weekly(sessions: SessionFactory, ctx: _Plan) -> int:
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
        rows.append(
            _row(ctx, Kind.weekly, "staff", person.id, person.id, f"{year}-W{week:02d}", due)
        )
    async with unit_of_work(sessions) as session:
        rows = await _new_only(session, rows)
        return await add_reminders(session, rows)


async def _plan_audit_head(sessions: SessionFactory, ctx: _Plan) -> int:
    """The audit log's head for each admin at the digest hour, every AUDIT_HEAD_DAYS days (the
    same days for everyone), so a copy lives outside the database: a log cut or rewritten
    later no longer reaches a head an admin was sent. The head itself is read at delivery."""
    every = ctx.rules.audit_head_days
    if every <= 0:
        return 0
    rows = []
    for person in ctx.staff.values():
        if not permissions.can_read_audit_log(person) or person.id is None:
            continue
        today = ctx.rules.today_of(person, ctx.now)
        if today.toordinal() % every:
            continue
        due = ctx.at(person, today, ctx.rules.digest_hour)
        rows.append(
            _row(ctx, Kind.audit_head, "staff", person.id, person.id, today.isoformat(), due)
        )
    async with unit_of_work(sessions) as session:
        rows = await _new_only(session, rows)
        return await add_reminders(session, rows)


RETENTION = {Kind.birthday: 4}  # days after the catch-up window; the rest keep KEEP_DAYS
KEEP_DAYS = 90


async def purge(session: AsyncSession, *, rules: Rules, now: datetime) -> int:
    """Delete finished rows nobody needs any more (the planners' windows have passed them)."""
    removed = 0
    finished = (ReminderStatus.sent, ReminderStatus.cancelled, ReminderStatus.failed)
    birthday_days = rules.catchup_days + RETENTION[Kind.birthday]
    keep_days = max(KEEP_DAYS, rules.survey_days + 30)
    for kinds, days in (
        ([Kind.birthday], birthday_days),
        (
            [k for k in Kind if k not in (Kind.birthday, Kind.survey, Kind.stale)]
            + sorted(outbox.KINDS),
            KEEP_DAYS,
        ),
        ([Kind.survey, Kind.stale], keep_days),
    ):
        result = await session.exec(
            delete(Reminder).where(
                col(Reminder.kind).in_(kinds),
                col(Reminder.status).in_(finished),
                col(Reminder.due_at) < now - timedelta(days=days),
                or_(col(Reminder.subject_type) != "sample", col(Reminder.subject_type).is_(None)),
            )
        )
        removed += result.rowcount or 0  # type: ignore[attr-defined]
    samples = await session.exec(
        delete(Reminder).where(
            col(Reminder.subject_type) == "sample",
            col(Reminder.created_at) < now - timedelta(days=1),
        )
    )
    return removed + (samples.rowcount or 0)  # type: ignore[attr-defined]


async def _plan_purge(sessions: SessionFactory, ctx: _Plan) -> int:
    async with unit_of_work(sessions) as session:
        removed = await purge(session, rules=ctx.rules, now=ctx.now)
    if removed:
        log.info("purged %d finished reminders", removed)
    return 0


# name, planner, how often (None: every poll)
PLANNERS = (
    ("followup", _plan_followups, None),
    ("overdue", _plan_overdue, None),
    ("reviews", _plan_reviews, None),
    ("rejected", _plan_rejected, None),
    ("complaints", _plan_complaints, None),
    ("weekly", _plan_weekly, None),
    ("audit_head", _plan_audit_head, None),
    ("birthday", _plan_birthdays, HEAVY_EVERY),
    ("stale", _plan_stale, DAILY),
    ("survey", _plan_surveys, DAILY),
    ("purge", _plan_purge, DAILY),
)


async def plan(
    sessions: SessionFactory,
    *,
    keyring: Keyring,
    rules: Rules,
    now: datetime,
    only: Sequence[str] | None = None,
) -> dict[str, int]:
    """Run every planner that is due; returns the number of new reminders by planner.

    Several short transactions, not one: a long one would keep SQLite's write lock from the
    people using the bot. A planner that fails leaves its last-run mark alone and is retried
    at the next poll.
    """
    async with unit_of_work(sessions) as session:
        staff = {s.id: s for s in (await session.exec(select(Staff))).all() if s.id is not None}
        runs = {r.name: r.ran_at for r in (await session.exec(select(ReminderPlanRun))).all()}
    created: dict[str, int] = {}
    limit = now - timedelta(days=rules.catchup_days)
    for name, planner, every in PLANNERS:
        if only is not None and name not in only:
            continue
        last = runs.get(name)
        if every is not None and last is not None and last <= now < last + every:
            continue
        since = min(now, max(last or limit, limit))
        ctx = _Plan(rules=rules, keyring=keyring, now=now, since=since, staff=staff)
        created[name] = await planner(sessions, ctx)
        async with unit_of_work(sessions) as session:
            await _mark_run(session, name, now)
    return created


async def _mark_run(session: AsyncSession, name: str, now: datetime) -> None:
    """Remember that `name` ran at `now` (an upsert: two processes may finish together)."""
    insert = sqlite.insert if _dialect(session) == "sqlite" else postgresql.insert
    table = ReminderPlanRun.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(name=name, ran_at=now)
    await session.exec(
        statement.on_conflict_do_update(index_elements=["name"], set_={"ran_at": now})
    )


# ---------------------------------------------------------------------------------------------
# delivery: due rows, claims with a lease, and what became of each attempt


@dataclass(frozen=True)
class Due:
    id: int
    recipient_id: int | None  # None: an outbox message to a chat (storage.outbox)
    sample: bool
    kind: str = ""


async def due_now(
    session: AsyncSession, *, now: datetime, limit: int, recipient_id: int | None = None
) -> list[Due]:
    """Rows to send now (pending and due, or claimed by a sender whose lease ran out), grouped
    by recipient; a recipient cut off by `limit` waits for the next batch whole."""
    query = select(Reminder.id, Reminder.recipient_id, Reminder.subject_type, Reminder.kind).where(
        col(Reminder.status).in_((ReminderStatus.pending, ReminderStatus.sending)),
        col(Reminder.next_attempt_at) <= now,
    )
    if recipient_id is not None:
        query = query.where(col(Reminder.recipient_id) == recipient_id)
    query = query.order_by(col(Reminder.recipient_id), col(Reminder.id)).limit(limit + 1)
    found = [
        Due(rid, recipient, subject_type == "sample", kind)
        for rid, recipient, subject_type, kind in (await session.exec(query)).all()
        if rid is not None
    ]
    if len(found) > limit:
        cut = found[limit].recipient_id
        whole = [d for d in found[:limit] if d.recipient_id != cut]
        found = whole or found[:limit]
    return found


async def recipients(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, Staff]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = await session.exec(select(Staff).where(col(Staff.id).in_(wanted)))
    return {s.id: s for s in rows.all() if s.id is not None}


async def postpone(session: AsyncSession, *, ids: Sequence[int], until: datetime) -> None:
    """Hold rows back (quiet hours) without counting an attempt."""
    await session.exec(
        update(Reminder)
        .where(
            col(Reminder.id).in_(list(ids)),
            col(Reminder.status).in_((ReminderStatus.pending, ReminderStatus.sending)),
        )
        .values(status=ReminderStatus.pending, next_attempt_at=until)
    )


async def claim(
    session: AsyncSession,
    *,
    ids: Sequence[int],
    now: datetime,
    lease: timedelta,
    max_attempts: int,
) -> list[int]:
    """Take rows for sending: pending (or sending with an expired lease) → sending until
    now + lease. Conditional, so of two claimers only one gets a row. Rows that already used
    up their attempts (a crash loop, say) are marked failed instead of being tried again."""
    if not ids:
        return []
    claimable = and_(
        col(Reminder.id).in_(list(ids)),
        col(Reminder.status).in_((ReminderStatus.pending, ReminderStatus.sending)),
        col(Reminder.next_attempt_at) <= now,
    )
    await session.exec(
        update(Reminder)
        .where(claimable, col(Reminder.attempts) >= max_attempts)
        .values(
            status=ReminderStatus.failed,
            last_error="gave up after repeated failures",
            updated_at=now,
        )
    )
    result = await session.exec(
        update(Reminder)
        .where(claimable, col(Reminder.attempts) < max_attempts)
        .values(
            status=ReminderStatus.sending,
            next_attempt_at=now + lease,
            attempts=col(Reminder.attempts) + 1,
            updated_at=now,
        )
        .returning(col(Reminder.id))
    )
    return sorted(result.scalars().all())


def _claimed(ids: Sequence[int]) -> Any:
    return and_(col(Reminder.id).in_(list(ids)), col(Reminder.status) == ReminderStatus.sending)


async def mark_sent(
    session: AsyncSession,
    *,
    ids: Sequence[int],
    chat_id: int,
    message_id: int,
    now: datetime,
) -> None:
    await session.exec(
        update(Reminder)
        .where(_claimed(ids))
        .values(
            status=ReminderStatus.sent,
            sent_at=now,
            chat_id=chat_id,
            message_id=message_id,
            next_attempt_at=None,
            last_error=None,
            updated_at=now,
        )
    )


async def defer(
    session: AsyncSession,
    *,
    ids: Sequence[int],
    until: datetime,
    error: str,
    now: datetime,
    counted: bool = True,
) -> None:
    """Back to pending until `until`; Telegram's flood control (counted=False) is no failure."""
    values: dict[str, Any] = {
        "status": ReminderStatus.pending,
        "next_attempt_at": until,
        "last_error": error[:500],
        "updated_at": now,
    }
    if not counted:
        values["attempts"] = col(Reminder.attempts) - 1
    await session.exec(update(Reminder).where(_claimed(ids)).values(**values))


async def retry_later(
    session: AsyncSession,
    *,
    ids: Sequence[int],
    error: str,
    now: datetime,
    max_attempts: int,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=1),
) -> tuple[int, int]:
    """After a network failure: exponential back-off per row, or failed once the attempts are
    used up. Returns (deferred, failed)."""
    rows = (await session.exec(select(Reminder.id, Reminder.attempts).where(_claimed(ids)))).all()
    by_wait: dict[timedelta, list[int]] = defaultdict(list)
    given_up = []
    for row_id, attempts in rows:
        assert row_id is not None
        if attempts >= max_attempts:
            given_up.append(row_id)
        else:
            by_wait[min(cap, base * 2 ** max(0, attempts - 1))].append(row_id)
    for wait, chunk in by_wait.items():
        await defer(session, ids=chunk, until=now + wait, error=error, now=now)
    if given_up:
        await fail(session, ids=given_up, error=f"gave up: {error}", now=now)
    return sum(len(c) for c in by_wait.values()), len(given_up)


async def fail(session: AsyncSession, *, ids: Sequence[int], error: str, now: datetime) -> None:
    await session.exec(
        update(Reminder)
        .where(_claimed(ids))
        .values(status=ReminderStatus.failed, last_error=error[:500], updated_at=now)
    )


async def cancel(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    """Rows whose reason went away before they were sent (a visit was logged, a review decided)."""
    if ids:
        await session.exec(
            update(Reminder)
            .where(_claimed(ids))
            .values(
                status=ReminderStatus.cancelled,
                last_error="no longer due",
                next_attempt_at=None,
                updated_at=now,
            )
        )


# ---------------------------------------------------------------------------------------------
# what a reminder says: checked against the records as they are now


@dataclass(frozen=True)
class Notice:
    """One reminder as its message shows it: display values, and what its buttons may do."""

    reminder_id: int
    kind: str
    values: dict[str, Any]
    actions: tuple[str, ...] = ()
    customer_id: int | None = None
    review_id: int | None = None
    lines: tuple[dict[str, Any], ...] = ()  # the entries of a digest
    sample: bool = False

    @property
    def label(self) -> str:
        """A few words naming the subject, for an "open" button."""
        return str(self.values.get("customer") or self.values.get("subject") or self.kind)


def effective_followup(customer: Customer, cycles: dict[str, int]) -> date | None:
    """The customer's follow-up date: the next one set, else the class cycle after the last
    visit; None if it has neither or was visited on or after that day."""
    on = customer.next_followup_on
    if on is None and customer.last_visit_on is not None:
        on = customer.last_visit_on + timedelta(days=cycles.get(customer.customer_class, 30))
    if on is None or (customer.last_visit_on is not None and customer.last_visit_on >= on):
        return None
    return on


class _Describer:
    """Turns claimed rows into notices, loading what they are about in batches."""

    def __init__(
        self, session: AsyncSession, keyring: Keyring, rules: Rules, now: datetime
    ) -> None:
        self.session, self.keyring, self.rules, self.now = session, keyring, rules, now
        self.staff: dict[int, Staff] = {}
        self._by_kind = {
            Kind.followup: self._followup,
            Kind.overdue: self._overdue,
            Kind.review: self._review,
            Kind.review_digest: self._review_digest,
            Kind.rejected: self._rejected,
            Kind.complaint_soon: self._complaint,
            Kind.complaint_overdue: self._complaint,
            Kind.birthday: self._birthday,
            Kind.stale: self._stale,
            Kind.survey: self._survey,
            Kind.weekly: self._weekly,
            Kind.audit_head: self._audit_head,
        }

    async def _load(self, model: Any, ids: Iterable[int | None]) -> dict[int, Any]:
        wanted = sorted({i for i in ids if i is not None})
        if not wanted:
            return {}
        rows = await self.session.exec(select(model).where(col(model.id).in_(wanted)))
        return {r.id: r for r in rows.all()}

    def name(self, staff_id: int | None) -> str:
        person = self.staff.get(staff_id) if staff_id is not None else None
        return person.display_name if person is not None else "—"

    def today(self, staff_id: int) -> date:
        return self.rules.today_of(self.staff.get(staff_id), self.now)

    def local(self, moment: datetime, staff_id: int) -> str:
        return moment.astimezone(self.rules.zone_of(self.staff.get(staff_id))).strftime(
            "%Y-%m-%d %H:%M"
        )

    async def run(self, rows: Sequence[Reminder]) -> tuple[list[Notice], list[int]]:
        everyone = (await self.session.exec(select(Staff))).all()
        self.staff = {s.id: s for s in everyone if s.id is not None}
        notices: list[Notice] = []
        gone: list[int] = []
        by_kind: dict[str, list[Reminder]] = defaultdict(list)
        for row in rows:
            if row.subject_type == "sample":
                notices.append(sample_notice(row))
            else:
                by_kind[row.kind].append(row)
        for kind, group in by_kind.items():
            describe_kind = self._by_kind.get(kind)
            found: dict[int, Notice] = await describe_kind(group) if describe_kind else {}
            for row in group:
                assert row.id is not None
                notice = found.get(row.id)
                if notice is None:
                    gone.append(row.id)
                else:
                    notices.append(notice)
        return notices, gone

    def _recipient_ok(self, row: Reminder) -> bool:
        person = self.staff.get(row.recipient_id)
        return person is not None and person.active

    async def _customers_of(self, group: Sequence[Reminder]) -> dict[int, Customer]:
        return await self._load(Customer, (r.subject_id for r in group))

    async def _followup(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        customers = await self._customers_of(group)
        found = {}
        for row in group:
            customer = customers.get(row.subject_id or 0)
            if (
                customer is None
                or not self._recipient_ok(row)
                or customer.status not in LIVE
                or customer.owner_id != row.recipient_id
                or effective_followup(customer, self.rules.cycles) != row.period_on
            ):
                continue
            assert row.id is not None and row.period_on is not None
            late = (self.today(row.recipient_id) - row.period_on).days
            found[row.id] = Notice(
                row.id,
                row.kind,
                {
                    "customer": customer.name,
                    "number": customer.customer_no,
                    "on": row.period_on.isoformat(),
                    "days": max(late, 0),
                    "late": late > 0,
                },
                ACTIONS[Kind.followup],
                customer_id=customer.id,
            )
        return found

    async def _overdue(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        customers = await self._customers_of(group)
        found = {}
        for row in group:
            customer = customers.get(row.subject_id or 0)
            manager = self.staff.get(row.recipient_id)
            if (
                customer is None
                or manager is None
                or not permissions.manages_team(manager, customer.team_id)
                or customer.status not in LIVE
                or effective_followup(customer, self.rules.cycles) != row.period_on
            ):
                continue
            assert row.id is not None and row.period_on is not None
            found[row.id] = Notice(
                row.id,
                row.kind,
                {
                    "owner": self.name(customer.owner_id),
                    "customer": customer.name,
                    "number": customer.customer_no,
                    "on": row.period_on.isoformat(),
                    "days": (self.today(row.recipient_id) - row.period_on).days,
                },
                customer_id=customer.id,
            )
        return found

    async def _review_subjects(
        self, reviews: Iterable[Review]
    ) -> tuple[dict[int, Customer], dict[int, Complaint]]:
        reviews = list(reviews)
        customers = await self._load(Customer, (r.customer_id for r in reviews))
        complaints = await self._load(Complaint, (r.complaint_id for r in reviews))
        return customers, complaints

    def _review_values(
        self,
        review: Review,
        customers: dict[int, Customer],
        complaints: dict[int, Complaint],
        recipient_id: int,
    ) -> dict[str, Any]:
        customer = customers.get(review.customer_id or 0)
        complaint = complaints.get(review.complaint_id or 0)
        parts = [complaint.complaint_no if complaint else None]
        if customer is not None and customer.status != RecordStatus.destroyed:
            parts += [customer.customer_no, customer.name]
        return {
            "review_kind": review.kind,
            "subject": " · ".join(p for p in parts if p) or "—",
            "customer": customer.name if customer is not None else "—",
            "submitter": self.name(review.submitted_by),
            "hours": int((self.now - review.submitted_at).total_seconds() // 3600),
            "when": self.local(review.submitted_at, recipient_id),
        }

    def _may_decide(self, review: Review, recipient_id: int) -> bool:
        people = deciders(
            self.staff.values(), team_id=review.team_id, submitted_by=review.submitted_by
        )
        return any(p.id == recipient_id for p in people)

    async def _review(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        reviews = await self._load(Review, (r.subject_id for r in group))
        customers, complaints = await self._review_subjects(reviews.values())
        found = {}
        for row in group:
            review = reviews.get(row.subject_id or 0)
            if (
                review is None
                or review.status != ReviewStatus.pending
                or not self._may_decide(review, row.recipient_id)
            ):
                continue
            assert row.id is not None
            found[row.id] = Notice(
                row.id,
                row.kind,
                self._review_values(review, customers, complaints, row.recipient_id),
                ACTIONS[Kind.review],
                review_id=review.id,
            )
        return found

    async def _review_digest(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        pending = (
            await self.session.exec(
                select(Review)
                .where(col(Review.status) == ReviewStatus.pending)
                .order_by(col(Review.submitted_at))
            )
        ).all()
        customers, complaints = await self._review_subjects(pending)
        found = {}
        for row in group:
            if not self._recipient_ok(row):
                continue
            mine = [r for r in pending if self._may_decide(r, row.recipient_id)]
            if not mine:
                continue
            assert row.id is not None
            lines = tuple(
                self._review_values(r, customers, complaints, row.recipient_id)
                for r in mine[:DIGEST_LINES]
            )
            found[row.id] = Notice(
                row.id,
                row.kind,
                {"count": len(mine), "more": max(0, len(mine) - DIGEST_LINES)},
                lines=lines,
            )
        return found

    async def _rejected(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        reviews = await self._load(Review, (r.subject_id for r in group))
        customers, complaints = await self._review_subjects(reviews.values())
        found = {}
        for row in group:
            review = reviews.get(row.subject_id or 0)
            if (
                review is None
                or review.status != ReviewStatus.rejected
                or review.submitted_by != row.recipient_id
                or not self._recipient_ok(row)
                or review.decided_at is None
                or await _resubmitted(self.session, review)
            ):
                continue
            customer = customers.get(review.customer_id or 0)
            if customer is None or customer.status == RecordStatus.destroyed:
                continue
            assert row.id is not None
            values = self._review_values(review, customers, complaints, row.recipient_id)
            values.update(
                number=customer.customer_no,
                days=(self.now - review.decided_at).days,
                reason=(review.reason or "—")[:200],
            )
            actions = ACTIONS[Kind.rejected]
            if review.kind != ReviewKind.customer_new or customer.status != RecordStatus.rejected:
                actions = tuple(a for a in actions if a != "resubmit")
            found[row.id] = Notice(row.id, row.kind, values, actions, customer_id=customer.id)
        return found

    async def _complaint(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        complaints = await self._load(Complaint, (r.subject_id for r in group))
        customers = await self._load(Customer, (c.customer_id for c in complaints.values()))
        found = {}
        for row in group:
            complaint = complaints.get(row.subject_id or 0)
            if complaint is None or complaint.status not in OPEN_COMPLAINTS:
                continue
            period = complaint.due_at.astimezone(UTC).strftime("%Y%m%dT%H%M")
            customer = customers.get(complaint.customer_id)
            if not row.dedup_key.endswith(f":{period}") or customer is None:
                continue
            people = [complaint.handler_id or complaint.received_by]
            people += [
                s.id for s in self.staff.values() if permissions.manages_team(s, customer.team_id)
            ]
            if row.recipient_id not in people or not self._recipient_ok(row):
                continue
            assert row.id is not None
            found[row.id] = Notice(
                row.id,
                row.kind,
                {
                    "number": complaint.complaint_no,
                    "customer": customer.name,
                    "severity": complaint.severity,
                    "due": self.local(complaint.due_at, row.recipient_id),
                },
                customer_id=customer.id,
            )
        return found

    async def _birthday(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        persons = await self._load(KeyPerson, (r.subject_id for r in group))
        customers = await self._load(Customer, (p.customer_id for p in persons.values()))
        found = {}
        for row in group:
            person = persons.get(row.subject_id or 0)
            customer = customers.get(person.customer_id) if person is not None else None
            if (
                person is None
                or customer is None
                or customer.status not in LIVE
                or customer.owner_id != row.recipient_id
                or not self._recipient_ok(row)
            ):
                continue
            try:
                key = await vault.data_key(self.session, self.keyring, customer.id or 0)
                opened = vault.unseal(
                    key, person.sealed, table="key_persons", row_id=person.id or 0
                )
            except DecryptionError:
                continue
            parsed = parse_birthday((opened or {}).get("birthday"))
            year, _, _when = row.dedup_key.rsplit(":", 1)[-1].partition("-")
            if parsed is None or not year.isdigit():
                continue
            birthday = birthday_in(int(year), *parsed)
            days = (birthday - self.today(row.recipient_id)).days
            if days < -1 or days > self.rules.birthday_days + 1:
                continue  # the birthday was changed since this was planned
            assert row.id is not None
            found[row.id] = Notice(
                row.id,
                row.kind,
                {
                    "person": person.name,
                    "customer": customer.name,
                    "date": birthday.strftime("%m-%d"),
                    "days": max(days, 0),
                    "today": days <= 0,
                },
                customer_id=customer.id,
            )
        return found

    async def _approved_owned(self, group: Sequence[Reminder]) -> list[tuple[Reminder, Customer]]:
        """The rows whose approved customer still belongs to their (active) recipient."""
        customers = await self._customers_of(group)
        kept = []
        for row in group:
            customer = customers.get(row.subject_id or 0)
            if (
                customer is not None
                and customer.status == RecordStatus.approved
                and customer.owner_id == row.recipient_id
                and self._recipient_ok(row)
            ):
                kept.append((row, customer))
        return kept

    async def _stale(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        found = {}
        for row, customer in await self._approved_owned(group):
            checked = customer.last_checked_at or customer.approved_at
            if checked is None or not row.dedup_key.endswith(checked.date().isoformat()):
                continue  # confirmed since
            assert row.id is not None
            found[row.id] = Notice(
                row.id,
                row.kind,
                {
                    "customer": customer.name,
                    "number": customer.customer_no,
                    "days": (self.now - checked).days,
                },
                ACTIONS[Kind.stale],
                customer_id=customer.id,
            )
        return found

    async def _survey(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        found = {}
        for row, customer in await self._approved_owned(group):
            if customer.approved_at is None:
                continue
            assert row.id is not None
            years = max(1, round((self.now - customer.approved_at).days / 365))
            found[row.id] = Notice(
                row.id,
                row.kind,
                {"customer": customer.name, "number": customer.customer_no, "years": years},
                ACTIONS[Kind.survey],
                customer_id=customer.id,
            )
        return found

    async def _weekly(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        found = {}
        for row in group:
            person = self.staff.get(row.recipient_id)
            if person is None or not permissions.receives_reports(person):
                continue
            team_id = None if permissions.is_admin(person) else person.team_id
            if team_id is None and not permissions.is_admin(person):
                continue
            today = self.today(row.recipient_id)
            numbers = await summary_numbers(
                self.session,
                team_id=team_id,
                since=self.now - timedelta(days=7),
                now=self.now,
                today=today,
            )
            team = await self.session.get(Team, team_id) if team_id else None
            assert row.id is not None
            found[row.id] = Notice(
                row.id, row.kind, {"team": team.name if team else None, **numbers}
            )
        return found

    async def _audit_head(self, group: Sequence[Reminder]) -> dict[int, Notice]:
        newest = await audit.head(self.session)
        found = {}
        for row in group:
            person = self.staff.get(row.recipient_id)
            if newest is None or person is None or not permissions.can_read_audit_log(person):
                continue
            assert row.id is not None
            found[row.id] = Notice(row.id, row.kind, {"entry": newest.id, "mac": newest.mac})
        return found


async def describe(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    ids: Sequence[int],
    now: datetime,
) -> tuple[list[Notice], list[int]]:
    """The notices of the given rows as the records stand now, and the rows no longer due
    (their reason went away, or the recipient is no longer the right person)."""
    if not ids:
        return [], []
    rows = (
        await session.exec(
            select(Reminder).where(col(Reminder.id).in_(list(ids))).order_by(col(Reminder.id))
        )
    ).all()
    return await _Describer(session, keyring, rules, now).run(rows)


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


# ---------------------------------------------------------------------------------------------
# samples (/testreminder)

SAMPLE_KINDS = tuple(Kind)


def sample_notice(row: Reminder) -> Notice:
    """A sample shows the kind's layout with made-up values and only harmless buttons."""
    assert row.id is not None
    complaint = row.kind in (Kind.complaint_soon, Kind.complaint_overdue)
    values: dict[str, Any] = {
        "number": "TS-2026-000045" if complaint else "KH-2026-000123",
        "on": (row.due_at.date() - timedelta(days=2)).isoformat(),
        "days": 2,
        "late": row.kind == Kind.followup,
        "hours": 26,
        "due": row.due_at.strftime("%Y-%m-%d %H:%M"),
        "severity": "high",
        "date": (row.due_at.date() + timedelta(days=3)).strftime("%m-%d"),
        "today": False,
        "years": 1,
        "review_kind": ReviewKind.customer_new,
        "count": 2,
        "more": 0,
        "when": row.due_at.strftime("%Y-%m-%d %H:%M"),
        "total": 12,
        "approved": 9,
        "pending": 2,
        "rejected": 1,
        "new": 3,
        "visits": 7,
        "overdue": 1,
        "complaints": 2,
        "complaints_overdue": 1,
        "reviews": 2,
        "entry": 1234,
        "mac": "0" * 64,
    }
    lines: tuple[dict[str, Any], ...] = ()
    if row.kind == Kind.review_digest:
        lines = (dict(values), dict(values))
    harmless = ("done", "snooze", "confirm")
    actions = tuple(a for a in ACTIONS.get(row.kind, ()) if a in harmless)
    return Notice(row.id, row.kind, values, actions, lines=lines, sample=True)


async def queue_samples(session: AsyncSession, *, actor: Staff, now: datetime) -> int:
    """One sample reminder of each kind for an admin, due now; sent through the real outbox."""
    if not permissions.can_send_samples(actor) or actor.id is None:
        raise Refused("not_allowed")
    stamp = now.strftime("%Y%m%dT%H%M%S%f")
    rows = []
    for kind in SAMPLE_KINDS:
        rows.append(
            {
                "dedup_key": _key(kind, "sample", 0, actor.id, stamp),
                "kind": kind,
                "subject_type": "sample",
                "subject_id": None,
                "recipient_id": actor.id,
                "due_at": now,
                "next_attempt_at": now,
                "status": ReminderStatus.pending,
                "attempts": 0,
                "payload": json.dumps({"sample": True}),
                "created_at": now,
                "updated_at": now,
            }
        )
    created = await add_reminders(session, rows)
    await audit.record(
        session,
        action="reminder.test",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        detail={"kinds": len(rows)},
    )
    return created


# ---------------------------------------------------------------------------------------------
# acting on a reminder: every press re-checks who pressed and the state of things


@dataclass(frozen=True)
class Outcome:
    """What an action did, for the reply."""

    action: str
    until: datetime | None = None  # snoozed until
    next_followup_on: date | None = None


async def _actionable(
    session: AsyncSession, *, actor: Staff, reminder_id: int, action: str
) -> Reminder:
    """The actor's own sent reminder, locked, if `action` is one of its kind's buttons.

    Refusals are raised before any write except the audit entry of a forged press, so a caller
    that catches `Refused` inside its unit of work keeps that entry.
    """
    reminder = (
        await session.exec(
            select(Reminder).where(col(Reminder.id) == reminder_id).with_for_update()
        )
    ).first()
    if reminder is None or reminder.recipient_id != actor.id or not actor.active:
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="reminder",
            entity_id=reminder_id,
            detail={"purpose": f"reminder.{action}", "exists": reminder is not None},
        )
        raise Refused("not_found")
    if action not in ACTIONS.get(reminder.kind, ()):
        raise Refused("not_allowed")
    if reminder.status != ReminderStatus.sent or reminder.acted in FINAL_ACTS:
        raise Refused("reminder_handled")
    return reminder


async def actionable(
    session: AsyncSession, *, actor: Staff, reminder_id: int, action: str
) -> Reminder:
    """Check that `action` may be taken on the reminder now (e.g. before asking for a date)."""
    reminder = await _actionable(session, actor=actor, reminder_id=reminder_id, action=action)
    if reminder.subject_type == "customer" and reminder.subject_id is not None:
        await _own_customer(session, actor=actor, reminder=reminder, action=action)
    return reminder


async def _own_customer(
    session: AsyncSession, *, actor: Staff, reminder: Reminder, action: str
) -> Customer:
    """The reminder's customer, still visible to and owned by the actor, locked for change."""
    customer = await visible_customer(
        session, actor=actor, customer_id=reminder.subject_id or 0, purpose=f"reminder.{action}"
    )
    if customer is None:
        raise Refused("not_found")
    await session.refresh(customer, with_for_update=True)
    if customer.owner_id != actor.id:
        raise Refused("reminder_outdated")
    return customer


async def snooze(
    session: AsyncSession, *, actor: Staff, reminder_id: int, days: int, now: datetime
) -> Outcome:
    """Send the reminder again in `days` days; the records stay as they are."""
    if days not in SNOOZE_DAYS:
        raise Refused("not_allowed")
    reminder = await actionable(session, actor=actor, reminder_id=reminder_id, action="snooze")
    until = now + timedelta(days=days)
    reminder.status, reminder.due_at, reminder.next_attempt_at = (
        ReminderStatus.pending,
        until,
        until,
    )
    reminder.snoozed_until, reminder.acted, reminder.acted_at = until, "snoozed", now
    reminder.attempts, reminder.last_error, reminder.updated_at = 0, None, now
    session.add(reminder)
    await audit.record(
        session,
        action="reminder.snooze",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="reminder",
        entity_id=reminder.id,
        detail={"kind": reminder.kind, "days": days},
    )
    return Outcome("snoozed", until=until)


async def _set_next_followup(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    on: date,
    now: datetime,
    reminder: Reminder,
) -> None:
    """Move the customer's next follow-up date, with its history line and audit entry."""
    assert customer.id is not None
    old = customer.next_followup_on
    if old == on:
        return
    customer.next_followup_on, customer.version, customer.updated_at = on, customer.version + 1, now
    session.add(customer)
    key = await vault.data_key(session, keyring, customer.id)
    diff = {"next_followup_on": [old.isoformat() if old else None, on.isoformat()]}
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity="customer",
            entity_id=customer.id,
            customer_id=customer.id,
            action="update",
            changed_by=actor.id,
            changed_at=now,
        ),
        diff,
    )
    await audit.record(
        session,
        action="customer.update",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={"fields": ["next_followup_on"], "via": "reminder", "reminder_id": reminder.id},
    )


async def _followup_customer(
    session: AsyncSession, *, actor: Staff, reminder: Reminder, action: str, rules: Rules
) -> Customer:
    customer = await _own_customer(session, actor=actor, reminder=reminder, action=action)
    if effective_followup(customer, rules.cycles) != reminder.period_on:
        raise Refused("reminder_outdated")  # a visit or another change moved it meanwhile
    return customer


async def reschedule(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    actor: Staff,
    reminder_id: int,
    on: date,
    now: datetime,
) -> Outcome:
    """Move the follow-up to `on`; the planner then reminds on that day at FOLLOWUP_HOUR."""
    today = rules.today_of(actor, now)
    if not today <= on <= today + timedelta(days=MAX_RESCHEDULE_DAYS):
        raise Refused("reminder_date")
    reminder = await _actionable(session, actor=actor, reminder_id=reminder_id, action="reschedule")
    customer = await _followup_customer(
        session, actor=actor, reminder=reminder, action="reschedule", rules=rules
    )
    await _set_next_followup(
        session, keyring=keyring, actor=actor, customer=customer, on=on, now=now, reminder=reminder
    )
    reminder.acted, reminder.acted_at, reminder.updated_at = "rescheduled", now, now
    reminder.snoozed_until = local_moment(on, rules.followup_hour, rules.zone_of(actor))
    session.add(reminder)
    return Outcome("rescheduled", next_followup_on=on)


async def done(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    actor: Staff,
    reminder_id: int,
    now: datetime,
) -> Outcome:
    """Mark it done; a follow-up done without a visit log moves on by the class cycle."""
    reminder = await _actionable(session, actor=actor, reminder_id=reminder_id, action="done")
    following = None
    if reminder.kind == Kind.followup:
        customer = await _followup_customer(
            session, actor=actor, reminder=reminder, action="done", rules=rules
        )
        following = rules.today_of(actor, now) + timedelta(
            days=rules.cycle(customer.customer_class)
        )
        await _set_next_followup(
            session,
            keyring=keyring,
            actor=actor,
            customer=customer,
            on=following,
            now=now,
            reminder=reminder,
        )
    elif reminder.subject_type == "customer" and reminder.subject_id is not None:
        await _own_customer(session, actor=actor, reminder=reminder, action="done")
    reminder.acted, reminder.acted_at, reminder.updated_at = "done", now, now
    session.add(reminder)
    return Outcome("done", next_followup_on=following)


async def confirm_accurate(
    session: AsyncSession, *, actor: Staff, reminder_id: int, now: datetime
) -> Outcome:
    """The owner confirms the approved record is still accurate (定期更新): last checked now."""
    reminder = await _actionable(session, actor=actor, reminder_id=reminder_id, action="confirm")
    customer = await _own_customer(session, actor=actor, reminder=reminder, action="confirm")
    if customer.status != RecordStatus.approved:
        raise Refused("reminder_outdated")
    assert customer.id is not None
    old = customer.last_checked_at
    customer.last_checked_at, customer.updated_at = now, now
    session.add(customer)
    session.add(
        ChangeRecord(
            entity="customer",
            entity_id=customer.id,
            customer_id=customer.id,
            action="confirm",
            changed_by=actor.id,
            changed_at=now,
        )
    )
    reminder.acted, reminder.acted_at, reminder.updated_at = "confirmed", now, now
    session.add(reminder)
    await audit.record(
        session,
        action="customer.confirm",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={"reminder_id": reminder.id, "previously_checked": old is not None},
    )
    return Outcome("confirmed")


async def notice_of(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    actor: Staff,
    reminder_id: int,
    now: datetime,
) -> Notice | None:
    """One of the actor's reminders as it reads now (to open it from a grouped message);
    None if it is not theirs (audited) or no longer due."""
    reminder = await session.get(Reminder, reminder_id)
    if reminder is None or reminder.recipient_id != actor.id:
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="reminder",
            entity_id=reminder_id,
            detail={"purpose": "reminder.open", "exists": reminder is not None},
        )
        return None
    if reminder.status != ReminderStatus.sent or reminder.acted in FINAL_ACTS:
        return None
    notices, _gone = await _Describer(session, keyring, rules, now).run([reminder])
    return notices[0] if notices else None
