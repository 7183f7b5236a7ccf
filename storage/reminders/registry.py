"""The registry: every reminder kind in one table, and the planning walk over it.

A new kind is one module (its planner and its description), one row here, one `Kind` member and
its messages (reminders.item.<kind> in bot/locale).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import select

from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import ReminderPlanRun, Staff
from storage.reminders import (
    audit_head,
    backup,
    birthday,
    catch_up,
    complaint,
    complete,
    followup,
    overdue,
    pool,
    rejected,
    retention,
    review,
    stale,
    survey,
    weekly,
)
from storage.reminders.delivery import Purge
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, mark_run
from storage.reminders.reading import Describe
from storage.reminders.rules import Rules


class Planning(Protocol):
    """What the walk needs of a planner (planning.Planner, ScanPlanner, delivery.Purge)."""

    @property
    def name(self) -> str: ...

    @property
    def every(self) -> timedelta | None: ...

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int: ...


@dataclass(frozen=True)
class Registered:
    """One kind: how its claimed rows read, the buttons it offers, and the planner that writes
    its rows (None where another row's planner writes them too)."""

    kind: Kind
    describe: Describe
    actions: tuple[str, ...] = ()
    planner: Planning | None = None


# in the order the planners run
REGISTRY: tuple[Registered, ...] = (
    # first: it reads how far the follow-ups were planned before they plan today
    Registered(Kind.catch_up, catch_up.describe, catch_up.ACTIONS, catch_up.PLANNER),
    Registered(Kind.followup, followup.describe, followup.ACTIONS, followup.PLANNER),
    Registered(Kind.overdue, overdue.describe, (), overdue.PLANNER),
    Registered(Kind.review, review.describe, review.ACTIONS, review.PLANNER),
    Registered(Kind.review_digest, review.describe_digest),  # planned with the reviews
    Registered(Kind.rejected, rejected.describe, rejected.ACTIONS, rejected.PLANNER),
    Registered(Kind.complaint_soon, complaint.describe, (), complaint.PLANNER),
    Registered(Kind.complaint_overdue, complaint.describe),  # planned with complaint_soon
    Registered(Kind.weekly, weekly.describe, (), weekly.PLANNER),
    Registered(Kind.audit_head, audit_head.describe, (), audit_head.PLANNER),
    Registered(Kind.birthday, birthday.describe, (), birthday.PLANNER),
    Registered(Kind.stale, stale.describe, stale.ACTIONS, stale.PLANNER),
    Registered(Kind.survey, survey.describe, survey.ACTIONS, survey.PLANNER),
    Registered(Kind.pool_warning, pool.describe, pool.ACTIONS, pool.PLANNER),
    Registered(Kind.pool_released, pool.describe_released),  # written by storage.pool
    Registered(Kind.pool_assigned, pool.describe_assigned, pool.ACTIONS),  # storage.pool too
    Registered(Kind.backup, backup.describe),  # written by the backup job, never planned
    Registered(Kind.retention, retention.describe, (), retention.PLANNER),
    Registered(Kind.complete, complete.describe, complete.ACTIONS, complete.PLANNER),
)
BY_KIND: dict[str, Registered] = {entry.kind: entry for entry in REGISTRY}
assert set(BY_KIND) == set(Kind), "every reminder kind needs its row in the registry"

# Buttons each kind offers (bot/reminder_text.py draws them; storage.reminders.actions checks)
ACTIONS: dict[str, tuple[str, ...]] = {e.kind: e.actions for e in REGISTRY if e.actions}
PLANNERS: tuple[Planning, ...] = (
    *(entry.planner for entry in REGISTRY if entry.planner is not None),
    birthday.CHANGED_PLANNER,  # a new key person's birthday within one poll, cheaply
    Purge(),
)


PERIODIC_BUDGET = 0.5  # seconds into a poll after which another periodic planner waits


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
    at the next poll. Of the planners that run every few hours (birthdays, records to re-check,
    surveys: over a million customers a second or more each) a poll runs one, and the next only
    while it is within PERIODIC_BUDGET; the others wait for the next poll, a minute later, so
    no poll holds the scheduler for seconds.
    """
    async with unit_of_work(sessions) as session:
        staff = {s.id: s for s in (await session.exec(select(Staff))).all() if s.id is not None}
        runs = {r.name: r.ran_at for r in (await session.exec(select(ReminderPlanRun))).all()}
    created: dict[str, int] = {}
    limit = now - timedelta(days=rules.catchup_days)
    started, periodic_ran = time.monotonic(), False
    for planner in PLANNERS:
        name, every = planner.name, planner.every
        if only is not None and name not in only:
            continue
        last = runs.get(name)
        if every is not None and last is not None and last <= now < last + every:
            continue
        if every is not None:
            if periodic_ran and time.monotonic() - started > PERIODIC_BUDGET:
                continue  # due still: the next poll runs it
            periodic_ran = True
        since = min(now, max(last or limit, limit))
        ctx = Plan(rules=rules, keyring=keyring, now=now, since=since, staff=staff)
        created[name] = await planner.run(sessions, ctx)
        async with unit_of_work(sessions) as session:
            await mark_run(session, name, now)
    return created
