"""Planning: the one skeleton every kind's planner runs on, and the outbox rows it writes.

A planner reads the records and returns outbox rows (`Reminder`), one per (kind, subject,
recipient, period) under a unique `dedup_key`, inserted with ON CONFLICT DO NOTHING: planning
twice, or two bot processes planning at once, creates nothing new. Each planner remembers when it
last ran (`ReminderPlanRun`), so after a restart it catches up from there (at most
REMINDER_CATCHUP_DAYS): late rather than never.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Date, func, true, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.crypto import Keyring
from storage.db import SessionFactory, reading, unit_of_work
from storage.models import Customer, Reminder, ReminderPlanRun, ReminderStatus, Staff
from storage.reminders.rules import Rules, local_moment

INSERT_CHUNK = 500  # keys a look-up asks for at once
WRITE_CHUNK = 5_000  # rows a bulk planner writes per transaction (a few tens of ms on SQLite)
Row = dict[str, Any]


@dataclass
class Plan:
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

    def row(
        self,
        kind: str,
        subject_type: str,
        subject_id: int | None,
        recipient_id: int,
        period: str,
        due_at: datetime,
        *,
        period_on: date | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Row:
        """One outbox row, keyed by what it is about, for whom and for which period."""
        return {
            "dedup_key": dedup_key(kind, subject_type, subject_id, recipient_id, period),
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
            "created_at": self.now,
            "updated_at": self.now,
        }


def dedup_key(
    kind: str, subject_type: str, subject_id: int | None, recipient_id: int, period: str
) -> str:
    return f"{kind}:{subject_type}:{subject_id or 0}:{recipient_id}:{period}"


Find = Callable[[AsyncSession, Plan], Awaitable[list[Row]]]
Scan = Callable[[AsyncSession, Plan, int], Awaitable[tuple[list[Row], int | None]]]


@dataclass(frozen=True)
class Planner:
    """The planner skeleton: read what is due in one unit of work, then write the new rows.

    `bulk` planners (over every customer: records to re-check, surveys) find only what has no
    row yet themselves, reading without SQLite's write lock (over a million customers the
    finding takes seconds, and the bot's own writes, a wizard's draft among them, must not wait
    for it), and insert in short transactions of their own; the others read the keys first, so
    a poll with nothing new writes nothing.
    """

    name: str  # its ReminderPlanRun mark
    find: Find
    every: timedelta | None = None  # None: every poll
    bulk: bool = False

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int:
        if self.bulk:
            async with reading(sessions) as session:
                rows = await self.find(session, ctx)
            return await insert_chunked(sessions, rows)
        async with unit_of_work(sessions) as session:
            rows = await self.find(session, ctx)
            return await add_reminders(session, await new_only(session, rows))


@dataclass(frozen=True)
class ScanPlanner:
    """A planner that reads in chunks, each chunk and its rows one short transaction of its own
    (`scan` returns the rows and the id to go on after, or None at the end)."""

    name: str
    scan: Scan
    every: timedelta | None = None

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int:
        created, after = 0, 0
        while True:
            async with unit_of_work(sessions) as session:
                rows, following = await self.scan(session, ctx, after)
                if following is None:
                    return created
                created += await add_reminders(session, rows)
                after = following


async def add_reminders(session: AsyncSession, rows: Sequence[Row]) -> int:
    """Insert outbox rows, skipping any whose dedup key exists; returns how many are new.

    The values go to the driver as they are stored, without SQLAlchemy's per-value work (a
    morning's tens of thousands of rows cost the driver's time, not the ORM's): one
    executemany on SQLite, one INSERT ... SELECT FROM unnest(...) per chunk on PostgreSQL.
    """
    if not rows:
        return 0
    table = Reminder.__table__  # type: ignore[attr-defined]
    names = list(rows[0])
    if any(len(r) != len(names) or any(n not in r for n in names) for r in rows):
        raise ValueError("outbox rows of one insert must carry the same columns")
    columns = [table.c[n] for n in names]
    connection = await session.connection()
    listed = ", ".join(names)
    if dialect_of(session) == "sqlite":
        statement = (
            f"INSERT INTO reminders ({listed}) VALUES ({', '.join('?' * len(names))}) "
            "ON CONFLICT (dedup_key) DO NOTHING"
        )
        stored_value = _remembered(_sqlite_value)
        stored = [tuple(stored_value(r[n]) for n in names) for r in rows]
        result = await connection.exec_driver_sql(statement, stored)
        return int(result.rowcount)
    dialect = session.get_bind().dialect
    arrays = ", ".join(
        f"${i}::{c.type.compile(dialect=dialect)}[]" for i, c in enumerate(columns, start=1)
    )
    statement = (
        f"INSERT INTO reminders ({listed}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (dedup_key) DO NOTHING"
    )
    created = 0
    plain = _remembered(_plain)
    for start in range(0, len(rows), BULK_CHUNK):
        chunk = rows[start : start + BULK_CHUNK]
        values = tuple([plain(r[n]) for r in chunk] for n in names)
        result = await connection.exec_driver_sql(statement, values)
        created += int(result.rowcount)
    return created


BULK_CHUNK = 10_000  # rows per PostgreSQL statement (its arrays stay a few MB)


def _remembered(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert` run once per distinct value of an insert: a morning's rows share a few
    hundred due times and one status, and converting each again was most of the insert."""
    converted: dict[tuple[type, Any], Any] = {}

    def one(value: Any) -> Any:
        kind = type(value)
        if value is None or kind is int or kind is str:
            return value
        key = (kind, value)
        found = converted.get(key, converted)
        if found is converted:
            found = converted[key] = convert(value)
        return found

    return one


def _plain(value: Any) -> Any:
    """A value as the driver takes it: an enum member as its string."""
    return value.value if isinstance(value, Enum) else value


def _sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite (storage.types.UTCDateTime: naive UTC text)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return _plain(value)


async def new_only(session: AsyncSession, rows: list[Row]) -> list[Row]:
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


async def insert_chunked(sessions: SessionFactory, rows: list[Row]) -> int:
    """Insert many rows in short transactions, so the bot's own writes never wait long."""
    created = 0
    for start in range(0, len(rows), WRITE_CHUNK):
        async with unit_of_work(sessions) as session:
            created += await add_reminders(session, rows[start : start + WRITE_CHUNK])
    return created


async def mark_run(session: AsyncSession, name: str, now: datetime) -> None:
    """Remember that `name` ran at `now` (an upsert: two processes may finish together)."""
    insert = sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert
    table = ReminderPlanRun.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(name=name, ran_at=now)
    await session.exec(
        statement.on_conflict_do_update(index_elements=["name"], set_={"ran_at": now})
    )


# ---------------------------------------------------------------------------------------------
# query pieces the planners share


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def plus_days(column: Any, days: int, dialect: str) -> Any:
    """`column + days` for a DATE column, in the dialect's own words (a date both ways)."""
    if dialect == "sqlite":
        return type_coerce(func.date(column, f"+{days} days"), Date)
    return type_coerce(column + days, Date)


def unindexed(column: Any, dialect: str) -> Any:
    """`+column` on SQLite: keeps its planner off that column's index.

    Without statistics (nobody runs ANALYZE on a bot's SQLite file) SQLite would rather read
    the status index, where every live customer matches, than the follow-up date range, which
    holds a few days' worth. PostgreSQL keeps statistics and gets the column as it is.
    """
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


OWNERS_CHUNK = 500  # owners a first_per_owner statement asks for at once
# (columns, conditions, order) of a per-owner pick, over Customer or an alias of it
Shape = Callable[[Any], tuple[Sequence[Any], Sequence[Any], Any]]


def first_per_owner(owners: Sequence[int], shape: Shape, limit: int, dialect: str) -> Any:
    """The first `limit` customers of each owner in `shape`'s order: a backlog arrives a few at
    a time. Each owner's few are an index seek (ix_customers_recheck_due, ix_customers_survey_due)
    instead of a rank over every approved customer (1.1 to 1.7 s at a million; issue 14).

    PostgreSQL reads them through LATERAL. SQLite has none, so it joins each owner to the ids of
    their few (a correlated IN, which SQLite answers per owner by rowid); the owners are listed
    by id, so SQLite, without statistics, still starts from them rather than from customers.
    """
    owner_ids = col(Staff.id).in_(list(owners))
    if dialect == "postgresql":
        columns, conditions, order = shape(Customer)
        picked = (
            select(*columns)
            .where(col(Customer.owner_id) == col(Staff.id), *conditions)
            .order_by(order)
            .limit(limit)
            .lateral("picked")
        )
        return select(*picked.c).select_from(Staff).join(picked, true()).where(owner_ids)
    _, conditions, order = shape(Customer)
    ids = (
        select(col(Customer.id))
        .where(col(Customer.owner_id) == col(Staff.id), *conditions)
        .order_by(order)
        .limit(limit)
        .correlate(Staff)
    )
    outer = aliased(Customer, name="picked")
    columns, _, _ = shape(outer)
    return select(*columns).select_from(Staff).join(outer, col(outer.id).in_(ids)).where(owner_ids)
