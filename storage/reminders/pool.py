"""The team pool's reminders: `pool_warning` (the owner is warned POOL_WARNING_DAYS before a
customer goes to the pool), `pool_released` (it went) and `pool_assigned` (a manager gave one
to a salesperson), and the one rule both the warning and the release read: when a customer is
due for release.

The release itself (storage.pool) writes the `pool_released` and `pool_assigned` rows in its
own transaction; only the warning has a planner.

When a customer is due. Its follow-up day is the next follow-up date set on it; without one,
the class cycle after its last visit; without a visit either, the class cycle after its
approval (a customer nobody ever visited is followed up one cycle after it became official).
A visit on or after that day restarts the clock from the visit. The customer is released once
its follow-up is overdue by more than POOL_AFTER_DAYS of its class (its release day is the
follow-up day plus those days plus one), and never before its owner's warning is
POOL_WARNING_DAYS old: a warning that went out late (the pool was just switched on, the bot was
down) postpones the release rather than shortening the notice.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, RecordStatus, Reminder, ReminderStatus, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Row, ScanPlanner, dedup_key, new_only
from storage.reminders.reading import Notice, Reader, customers_of, per_row
from storage.reminders.rules import Rules

ACTIONS = ("visit",)
SCAN_CHUNK = 500
PLAN_EVERY = timedelta(hours=1)  # a warning is due at a morning hour: hourly is soon enough

# the columns the rule reads, in this order
RULE_COLUMNS = (
    Customer.id,
    Customer.owner_id,
    Customer.customer_class,
    Customer.next_followup_on,
    Customer.last_visit_on,
    Customer.approved_at,
)


def followup_day(
    *,
    next_followup_on: date | None,
    last_visit_on: date | None,
    approved_at: datetime | None,
    cycle: int,
) -> date | None:
    """The day the customer's follow-up was due (module docstring); None if it has no basis."""
    on = next_followup_on
    if on is None and last_visit_on is not None:
        on = last_visit_on + timedelta(days=cycle)
    if on is None and approved_at is not None:
        on = approved_at.astimezone(UTC).date() + timedelta(days=cycle)
    if on is None:
        return None
    if last_visit_on is not None and last_visit_on >= on:
        on = last_visit_on + timedelta(days=cycle)
    return on


def release_day(
    rules: Rules,
    *,
    customer_class: str,
    next_followup_on: date | None,
    last_visit_on: date | None,
    approved_at: datetime | None,
) -> date | None:
    """The first day the customer may be released; None when its class never goes to the pool."""
    days = rules.pool_after.get(customer_class)
    if days is None:
        return None
    on = followup_day(
        next_followup_on=next_followup_on,
        last_visit_on=last_visit_on,
        approved_at=approved_at,
        cycle=rules.cycle(customer_class),
    )
    return None if on is None else on + timedelta(days=days + 1)


def release_day_of(rules: Rules, customer: Customer) -> date | None:
    return release_day(
        rules,
        customer_class=customer.customer_class,
        next_followup_on=customer.next_followup_on,
        last_visit_on=customer.last_visit_on,
        approved_at=customer.approved_at,
    )


def release_day_of_row(rules: Rules, row: Any) -> date | None:
    """`release_day` of a row of RULE_COLUMNS."""
    _id, _owner, customer_class, next_on, last_visit, approved_at = row[:6]
    if isinstance(approved_at, str):  # SQLite hands back text in some expressions
        approved_at = datetime.fromisoformat(approved_at)
    if approved_at is not None and approved_at.tzinfo is None:
        approved_at = approved_at.replace(tzinfo=UTC)
    return release_day(
        rules,
        customer_class=customer_class,
        next_followup_on=next_on,
        last_visit_on=last_visit,
        approved_at=approved_at,
    )


def in_play() -> list[Any]:
    """WHERE clauses: the customers the pool may take (approved, not in it, owner active)."""
    return [
        col(Customer.status) == RecordStatus.approved,
        col(Customer.pooled_at).is_(None),
        col(Customer.owner_id).in_(select(Staff.id).where(col(Staff.active).is_(True))),
    ]


def released_by(rules: Rules, last_day: date) -> Any:
    """A WHERE clause admitting every customer whose release day may be on or before
    `last_day` (a superset: `release_day` decides exactly), one range per class so each reads
    the follow-up date's index."""
    branches = []
    for customer_class, days in sorted(rules.pool_after.items()):
        latest = last_day - timedelta(days=days + 1)  # the latest follow-up day that qualifies
        cycle = timedelta(days=rules.cycle(customer_class))
        next_on, last_visit = col(Customer.next_followup_on), col(Customer.last_visit_on)
        branches.append(
            and_(
                col(Customer.customer_class) == customer_class,
                or_(
                    and_(
                        next_on.is_not(None),
                        next_on <= latest,
                        or_(last_visit.is_(None), last_visit <= latest),
                    ),
                    and_(next_on.is_(None), last_visit <= latest - cycle),
                    and_(
                        next_on.is_(None),
                        last_visit.is_(None),
                        col(Customer.approved_at)
                        < datetime.combine(latest - cycle + timedelta(days=1), time(), tzinfo=UTC),
                    ),
                ),
            )
        )
    return or_(*branches) if branches else false()


def release_date_shown(rules: Rules, row: Reminder) -> datetime:
    """When the warned customer goes to the pool at the earliest: the warning's time plus
    POOL_WARNING_DAYS (storage.pool releases no sooner)."""
    return row.due_at + timedelta(days=rules.pool_warning_days)


# ---------------------------------------------------------------------------------------------
# the warning's planner


async def scan(session: AsyncSession, ctx: Plan, after: int) -> tuple[list[Row], int | None]:
    """One chunk of customers whose release is POOL_WARNING_DAYS away or nearer (or past, when
    the warning is late): a warning each for the owner, keyed by the release day."""
    rules = ctx.rules
    if not rules.pool_after:
        return [], None
    warn = timedelta(days=rules.pool_warning_days)
    last_day = ctx.hi + warn  # a day's margin for time zones; `release_day` decides exactly
    chunk = (
        await session.exec(
            select(*RULE_COLUMNS)
            .where(*in_play(), released_by(rules, last_day), col(Customer.id) > after)
            .order_by(col(Customer.id))
            .limit(SCAN_CHUNK)
        )
    ).all()
    if not chunk:
        return [], None
    rows = []
    for record in chunk:
        customer_id, owner_id = record[0], record[1]
        owner = ctx.active(owner_id)
        release = release_day_of_row(rules, record)
        if owner is None or release is None or customer_id is None:
            continue
        today = rules.today_of(owner, ctx.now)
        warn_on = release - warn
        if warn_on > today:
            continue
        due = ctx.at(owner, warn_on, rules.followup_hour) if warn_on == today else ctx.now
        rows.append(
            ctx.row(
                Kind.pool_warning,
                "customer",
                customer_id,
                owner_id,
                release.isoformat(),
                due,
                period_on=release,
            )
        )
    return await new_only(session, rows), chunk[-1][0]


PLANNER = ScanPlanner("pool_warning", scan, every=PLAN_EVERY)


async def _read_warning(
    reader: Reader, row: Reminder, customers: dict[int, Customer]
) -> Notice | None:
    """Still approved, the recipient's, out of the pool, and still due on that release day."""
    customer = reader.approved_owned(row, customers)
    if customer is None or release_day_of(reader.rules, customer) != row.period_on:
        return None
    assert row.id is not None and row.period_on is not None
    days = reader.rules.pool_after.get(customer.customer_class, 0)
    followup = row.period_on - timedelta(days=days + 1)
    return Notice(
        row.id,
        row.kind,
        {
            "customer": customer.name,
            "number": customer.customer_no,
            "days": max((reader.today(row.recipient_id or 0) - followup).days, 0),
            "on": reader.local(release_date_shown(reader.rules, row), row.recipient_id or 0)[:10],
            "warning_days": reader.rules.pool_warning_days,
        },
        ACTIONS,
        customer_id=customer.id,
    )


describe = per_row(customers_of, _read_warning)


# ---------------------------------------------------------------------------------------------
# what storage.pool tells people: released (the last owner), assigned (the new owner)


def notice_row(
    kind: Kind,
    *,
    customer_id: int,
    recipient_id: int,
    now: datetime,
    payload: dict[str, Any] | None = None,
) -> Row:
    """An outbox row due now (quiet hours still hold it back), keyed by the moment, so each
    release or assignment is told once."""
    period = now.strftime("%Y%m%dT%H%M%S%f")
    return {
        "dedup_key": dedup_key(kind, "customer", customer_id, recipient_id, period),
        "kind": kind,
        "subject_type": "customer",
        "subject_id": customer_id,
        "recipient_id": recipient_id,
        "due_at": now,
        "next_attempt_at": now,
        "status": ReminderStatus.pending,
        "attempts": 0,
        "period_on": now.date(),
        "payload": json.dumps(payload, sort_keys=True) if payload else None,
        "created_at": now,
        "updated_at": now,
    }


def _payload(row: Reminder) -> dict[str, Any]:
    try:
        value = json.loads(row.payload or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _read_released(
    reader: Reader, row: Reminder, customers: dict[int, Customer]
) -> Notice | None:
    """Still in the pool, and the recipient was its last owner."""
    customer = customers.get(row.subject_id or 0)
    if (
        customer is None
        or customer.pooled_at is None
        or customer.owner_id != row.recipient_id
        or not reader.recipient_ok(row)
    ):
        return None
    assert row.id is not None
    days = _payload(row).get("days")
    return Notice(
        row.id,
        row.kind,
        {
            "customer": customer.name,
            "number": customer.customer_no,
            "days": days if isinstance(days, int) else 0,
        },
        ("claim",),  # claim it back from the pool (its rules: storage.pool.claim)
        customer_id=customer.id,
    )


describe_released = per_row(customers_of, _read_released)


async def _read_assigned(
    reader: Reader, row: Reminder, customers: dict[int, Customer]
) -> Notice | None:
    """Still the recipient's, and out of the pool."""
    customer = customers.get(row.subject_id or 0)
    if (
        customer is None
        or customer.pooled_at is not None
        or customer.owner_id != row.recipient_id
        or not reader.recipient_ok(row)
    ):
        return None
    assert row.id is not None
    by = _payload(row).get("by")
    return Notice(
        row.id,
        row.kind,
        {
            "customer": customer.name,
            "number": customer.customer_no,
            "manager": reader.name(by if isinstance(by, int) else None),
        },
        ACTIONS,
        customer_id=customer.id,
    )


describe_assigned = per_row(customers_of, _read_assigned)
