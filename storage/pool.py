"""The team pool (公海, SPEC section 10): customers nobody follows up go back to their team.

An approved customer whose follow-up is overdue by more than POOL_AFTER_DAYS of its class is
released into its team's pool, POOL_WARNING_DAYS after its owner was warned (the rule is
storage.reminders.pool's, shared with the warning). Released, it keeps its team and its last
owner (`owner_id`) but is nobody's own (storage.permissions): it leaves its owner's /my, /find
and reminders; the team's salespeople see it only in the pool's list, without sensitive
columns, until one of them claims it; its managers still see it as their team's and may assign
it to a salesperson of the team.

Claims and assignments move the customer with storage.ownership.move_customers under the
condition "still in the pool", so of two people at once exactly one gets it. A claimant holds
at most POOL_CLAIM_LIMIT customers claimed in the last CLAIM_WINDOW (assignments by a manager do
not count). The new owner's follow-up is due the day they take it (so the pool does not take
it straight back and their morning reminder comes).

The release job runs at each scheduler poll, in batches of RELEASE_BATCH customers, each its
own short transaction: a conditional UPDATE (`pooled_at IS NULL`) on rows locked FOR UPDATE
SKIP LOCKED, so a restart or a second instance releases nothing twice and waits for nobody.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, ownership, permissions, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import NotFound, Refused
from storage.models import (
    Customer,
    RecordStatus,
    Reminder,
    ReminderStatus,
    Role,
    Staff,
    Team,
    Transfer,
)
from storage.reminders.kinds import Kind
from storage.reminders.planning import add_reminders
from storage.reminders.pool import (
    RULE_COLUMNS,
    in_play,
    notice_row,
    release_day_of_row,
    released_by,
)
from storage.reminders.rules import Rules, zone
from storage.vault import DataErased

CLAIM_WINDOW = timedelta(days=30)  # POOL_CLAIM_LIMIT counts the claims of the last 30 days
RELEASE_BATCH = 200  # customers per release transaction
RELEASE_BATCHES = 25  # per poll (5,000 customers); the rest are released at the next one
FOLLOWUP_FIELD = "next_followup_on"


# ---------------------------------------------------------------------------------------------
# what the pool holds


def pooled_in(team_id: int) -> list[object]:
    """WHERE clauses on Customer: the customers in the team's pool."""
    return [
        col(Customer.team_id) == team_id,
        col(Customer.pooled_at).is_not(None),
        col(Customer.status) == RecordStatus.approved,
    ]


@dataclass(frozen=True)
class PoolTeam:
    """A team whose pool the actor may see, and how many customers are in it."""

    id: int
    name: str
    count: int


@dataclass(frozen=True)
class PoolEntry:
    """A customer in the pool as its claimants may see it: no sensitive column, no card."""

    id: int
    customer_no: str
    name: str
    short_name: str | None
    customer_class: str
    industry: str | None
    region: str | None
    pooled_at: datetime

    def days_in_pool(self, now: datetime) -> int:
        return max((now - self.pooled_at).days, 0)


@dataclass(frozen=True)
class PoolPage:
    team_id: int
    team_name: str
    entries: tuple[PoolEntry, ...]
    total: int
    page: int
    pages: int


async def pool_teams(session: AsyncSession, *, actor: Staff) -> list[PoolTeam]:
    """The teams whose pool the actor may see (a salesperson's one, a manager's, all for an
    admin), by name, each with its count."""
    teams = (await session.exec(select(Team).order_by(col(Team.name), col(Team.id)))).all()
    allowed = [t for t in teams if t.id is not None and permissions.can_see_pool(actor, t.id)]
    if not allowed:
        return []
    counts = dict(
        (
            await session.exec(
                select(Customer.team_id, func.count())
                .where(
                    col(Customer.team_id).in_([t.id for t in allowed]),
                    col(Customer.pooled_at).is_not(None),
                    col(Customer.status) == RecordStatus.approved,
                )
                .group_by(col(Customer.team_id))
            )
        ).all()
    )
    return [PoolTeam(t.id or 0, t.name, int(counts.get(t.id, 0))) for t in allowed]


async def pool_page(
    session: AsyncSession, *, actor: Staff, team_id: int, page: int, page_size: int = 8
) -> PoolPage | None:
    """One page of the team's pool, newest first; None if the actor may not see it."""
    team = await session.get(Team, team_id)
    if team is None or not permissions.can_see_pool(actor, team_id):
        return None
    where = pooled_in(team_id)
    total = int(
        (await session.exec(select(func.count()).select_from(Customer).where(*where))).one()
    )
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(
            Customer.id,
            Customer.customer_no,
            Customer.name,
            Customer.short_name,
            Customer.customer_class,
            Customer.industry,
            Customer.region,
            Customer.pooled_at,
        )
        .where(*where)
        .order_by(col(Customer.pooled_at).desc(), col(Customer.id).desc())
        .offset(page * page_size)
        .limit(page_size)
    )
    entries = tuple(PoolEntry(*row) for row in rows.all())
    return PoolPage(team_id, team.name, entries, total, page, pages)


async def pool_entry(session: AsyncSession, *, actor: Staff, customer_id: int) -> PoolEntry | None:
    """One customer of a pool the actor may see, as the list shows it; None otherwise."""
    customer = await session.get(Customer, customer_id)
    if (
        customer is None
        or customer.pooled_at is None
        or customer.status != RecordStatus.approved
        or customer.id is None
        or not permissions.can_see_pool(actor, customer.team_id)
    ):
        return None
    return PoolEntry(
        customer.id,
        customer.customer_no,
        customer.name,
        customer.short_name,
        customer.customer_class,
        customer.industry,
        customer.region,
        customer.pooled_at,
    )


async def team_of(session: AsyncSession, *, customer_id: int) -> int | None:
    """The customer's team, to lead a press back to its pool's list (never shown)."""
    return (
        await session.exec(select(Customer.team_id).where(col(Customer.id) == customer_id))
    ).first()


async def claims_in_window(session: AsyncSession, *, staff_id: int, now: datetime) -> int:
    """How many customers the person claimed from the pool in the last CLAIM_WINDOW and still
    holds (`claimed_at` is the present owner's claim)."""
    result = await session.exec(
        select(func.count())
        .select_from(Customer)
        .where(
            col(Customer.owner_id) == staff_id,
            col(Customer.claimed_at) >= now - CLAIM_WINDOW,
        )
    )
    return int(result.one())


async def assignees(
    session: AsyncSession, *, actor: Staff, team_id: int, page: int, page_size: int = 8
) -> tuple[list[Staff], int, int] | None:
    """One page of the salespeople a pool customer of the team may be assigned to (name
    order), the page shown and the pages; None if the actor may not assign from its pool."""
    if not permissions.can_assign_from_pool(actor, team_id):
        return None
    where = [
        col(Staff.team_id) == team_id,
        col(Staff.role) == Role.salesperson,
        col(Staff.active).is_(True),
    ]
    total = int((await session.exec(select(func.count()).select_from(Staff).where(*where))).one())
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(Staff)
        .where(*where)
        .order_by(col(Staff.display_name), col(Staff.id))
        .offset(page * page_size)
        .limit(page_size)
    )
    return list(rows.all()), page, pages


# ---------------------------------------------------------------------------------------------
# taking a customer out of the pool


def _still_pooled(team_id: int | None) -> list[object]:
    """move_customers' `only_if`: still in that team's pool, checked on the locked row."""
    return [
        col(Customer.pooled_at).is_not(None),
        col(Customer.status) == RecordStatus.approved,
        col(Customer.team_id) == team_id,
    ]


async def _pooled_customer(session: AsyncSession, customer_id: int) -> Customer | None:
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.status != RecordStatus.approved:
        return None
    return customer


async def _follow_up_on(
    session: AsyncSession,
    keyring: Keyring,
    *,
    customer_id: int,
    on: date,
    actor_id: int | None,
    transfer: Transfer,
    now: datetime,
) -> None:
    """The new owner's follow-up is due `on` (their today) unless it is due later anyway."""
    old = (
        await session.exec(select(Customer.next_followup_on).where(col(Customer.id) == customer_id))
    ).one()
    if old is not None and old >= on:
        return
    await session.exec(
        update(Customer)
        .where(col(Customer.id) == customer_id)
        .values(next_followup_on=on, version=col(Customer.version) + 1, updated_at=now)
    )
    record = vault.customer_change(
        customer_id, action=transfer, changed_by=actor_id, changed_at=now
    )
    diff = {FOLLOWUP_FIELD: [old.isoformat() if old else None, on.isoformat()]}
    try:
        key = await vault.data_key(session, keyring, customer_id)
    except DataErased:
        await vault.add_change(session, b"", record, None)
        return
    await vault.add_change(session, key, record, diff)


def _today_of(staff: Staff, now: datetime, timezone: str) -> date:
    return now.astimezone(zone(staff.timezone, timezone)).date()


async def _take(
    session: AsyncSession,
    keyring: Keyring,
    *,
    customer: Customer,
    to_staff: Staff,
    actor_id: int | None,
    transfer: Transfer,
    now: datetime,
    timezone: str,
) -> None:
    """Take a customer out of the pool for `to_staff` (a claim or an assignment): moved only if
    it is still in that team's pool (of two at once, one wins: `pool_taken` for the other),
    stamped by the bot's clock, with its follow-up due on the new owner's today, so the pool
    does not take it straight back."""
    assert customer.id is not None and customer.pooled_at is not None
    moved = await ownership.move_customers(
        session,
        keyring,
        customer_ids=[customer.id],
        to_staff=to_staff,
        actor_id=actor_id,
        transfer=transfer,
        only_if=_still_pooled(customer.team_id),
        audit_detail={"pooled_at": customer.pooled_at.isoformat()},
        now=now,
    )
    if not moved.customers:
        raise Refused("pool_taken")
    await _follow_up_on(
        session,
        keyring,
        customer_id=customer.id,
        on=_today_of(to_staff, now, timezone),
        actor_id=actor_id,
        transfer=transfer,
        now=now,
    )


async def claim(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff,
    customer_id: int,
    now: datetime,
    timezone: str,
    limit: int,
) -> int:
    """The actor claims a customer of their team's pool; returns its id.

    Refused: `not_found` (no such customer in a pool the actor may claim from, e.g. forged
    button data), `pool_taken` (someone else was first), `pool_claims_off` (POOL_CLAIM_LIMIT 0),
    `pool_limit` (the limit reached; details `limit` and `days`).
    """
    customer = await _pooled_customer(session, customer_id)
    if customer is None or not permissions.can_claim_from_pool(actor, customer.team_id):
        raise NotFound()
    if customer.pooled_at is None:
        raise Refused("pool_taken")
    if limit <= 0:
        raise Refused("pool_claims_off")
    assert actor.id is not None
    # one claimant's claims one at a time (PostgreSQL; SQLite writes one at a time anyway)
    await session.exec(select(Staff.id).where(col(Staff.id) == actor.id).with_for_update())
    if await claims_in_window(session, staff_id=actor.id, now=now) >= limit:
        raise Refused("pool_limit", limit=limit, days=CLAIM_WINDOW.days)
    await _take(
        session,
        keyring,
        customer=customer,
        to_staff=actor,
        actor_id=actor.id,
        transfer=Transfer.pool_claim,
        now=now,
        timezone=timezone,
    )
    return customer_id


async def assign(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff,
    customer_id: int,
    assignee_id: int,
    now: datetime,
    timezone: str,
) -> Staff:
    """A manager (or an admin) gives a customer of the team's pool to one of its salespeople,
    who is told (an outbox row, in this transaction); returns the assignee.

    Refused: `not_found` (not in a pool the actor may assign from), `pool_taken`, and
    `pool_assignee` (not an active salesperson of the customer's team).
    """
    customer = await _pooled_customer(session, customer_id)
    if customer is None or not permissions.can_assign_from_pool(actor, customer.team_id):
        raise NotFound()
    if customer.pooled_at is None:
        raise Refused("pool_taken")
    assignee = await session.get(Staff, assignee_id)
    if assignee is None or not permissions.can_be_assigned_from_pool(assignee, customer.team_id):
        raise Refused("pool_assignee")
    assert assignee.id is not None
    await _take(
        session,
        keyring,
        customer=customer,
        to_staff=assignee,
        actor_id=actor.id,
        transfer=Transfer.pool_assign,
        now=now,
        timezone=timezone,
    )
    await add_reminders(
        session,
        [
            notice_row(
                Kind.pool_assigned,
                customer_id=customer_id,
                recipient_id=assignee.id,
                now=now,
                payload={"by": actor.id},
            )
        ],
    )
    return assignee


# ---------------------------------------------------------------------------------------------
# the release job


@dataclass(frozen=True)
class _Due:
    customer_id: int
    owner_id: int
    release_on: date
    overdue_days: int


async def _warned(
    session: AsyncSession, candidates: dict[int, _Due], *, before: datetime
) -> set[tuple[int, date]]:
    """(customer, release day) pairs whose owner's warning was due by `before`."""
    rows = await session.exec(
        select(Reminder.subject_id, Reminder.period_on).where(
            col(Reminder.kind) == Kind.pool_warning,
            col(Reminder.subject_type) == "customer",
            col(Reminder.subject_id).in_(list(candidates)),
            col(Reminder.due_at) <= before,
        )
    )
    return {(cid, on) for cid, on in rows.all() if cid is not None and on is not None}


async def _release(
    session: AsyncSession,
    keyring: Keyring,
    *,
    due: list[_Due],
    names: dict[int, str],
    now: datetime,
) -> int:
    """Release these customers (those still out of the pool): the mark, the end of what was
    pending about them, a history line and an audit entry each, and each owner's notice."""
    by_id = {d.customer_id: d for d in due}
    result = await session.exec(
        update(Customer)
        .where(
            col(Customer.id).in_(list(by_id)),
            col(Customer.pooled_at).is_(None),
            col(Customer.status) == RecordStatus.approved,
        )
        .values(
            pooled_at=now,
            claimed_at=None,
            version=col(Customer.version) + 1,
            updated_at=now,
        )
        .returning(col(Customer.id))
    )
    released = [row[0] for row in result.all()]
    if not released:
        return 0
    # what was pending about them is moot: nobody follows a pooled customer up
    await session.exec(
        update(Reminder)
        .where(
            col(Reminder.subject_type) == "customer",
            col(Reminder.subject_id).in_(released),
            col(Reminder.status) == ReminderStatus.pending,
            col(Reminder.kind) != Kind.pool_released,
        )
        .values(status=ReminderStatus.cancelled, next_attempt_at=None, updated_at=now)
    )
    notices = []
    for customer_id in released:
        item = by_id[customer_id]
        record = vault.customer_change(
            customer_id, action=Transfer.pool_release, changed_by=None, changed_at=now
        )
        try:
            key = await vault.data_key(session, keyring, customer_id)
            await vault.add_change(
                session, key, record, {ownership.OWNER_FIELD: [names.get(item.owner_id), None]}
            )
        except DataErased:
            await vault.add_change(session, b"", record, None)
        await audit.record(
            session,
            action=f"customer.{Transfer.pool_release}",
            entity="customer",
            entity_id=customer_id,
            detail={
                "from": item.owner_id,
                "overdue_days": item.overdue_days,
                "release_on": item.release_on.isoformat(),
            },
        )
        notices.append(
            notice_row(
                Kind.pool_released,
                customer_id=customer_id,
                recipient_id=item.owner_id,
                now=now,
                payload={"days": item.overdue_days},
            )
        )
    await add_reminders(session, notices)
    return len(released)


async def release_due(
    sessions: SessionFactory, *, keyring: Keyring, rules: Rules, now: datetime
) -> int:
    """Release every customer that is due (module docstring), a batch per transaction, at most
    RELEASE_BATCHES batches; returns how many were released."""
    if not rules.pool_after:
        return 0
    async with unit_of_work(sessions) as session:
        staff = {s.id: s for s in (await session.exec(select(Staff))).all() if s.id is not None}
    warned_by = now - timedelta(days=rules.pool_warning_days)
    last_day = now.astimezone(UTC).date() + timedelta(days=1)  # the zones' margin
    released, after = 0, 0
    for _ in range(RELEASE_BATCHES):
        async with unit_of_work(sessions) as session:
            chunk = (
                await session.exec(
                    select(*RULE_COLUMNS)
                    .where(*in_play(), released_by(rules, last_day), col(Customer.id) > after)
                    .order_by(col(Customer.id))
                    .limit(RELEASE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not chunk:
                break
            after = chunk[-1][0]
            candidates: dict[int, _Due] = {}
            for row in chunk:
                customer_id, owner_id = row[0], row[1]
                owner = staff.get(owner_id)
                release_on = release_day_of_row(rules, row)
                if customer_id is None or owner is None or release_on is None:
                    continue
                today = rules.today_of(owner, now)
                if release_on > today:
                    continue
                days = rules.pool_after[row[2]]
                overdue = (today - release_on).days + days + 1
                candidates[customer_id] = _Due(customer_id, owner_id, release_on, overdue)
            if candidates:
                warned = await _warned(session, candidates, before=warned_by)
                due = [d for d in candidates.values() if (d.customer_id, d.release_on) in warned]
                if due:
                    names = {i: s.display_name for i, s in staff.items()}
                    released += await _release(session, keyring, due=due, names=names, now=now)
        if len(chunk) < RELEASE_BATCH:
            break
    return released
