"""The outbox's state machine: due rows, claims with a lease, what became of each attempt, and
the purge of finished rows.

Delivery (bot/sender.py) claims due rows with a conditional UPDATE pending → sending that
carries a lease (`next_attempt_at`), sends, and only then marks them sent. Why at-least-once:
if the process dies between Telegram's answer and our commit, the row is still `sending`; its
lease runs out and the next run sends it again. So a crash can repeat the few messages in flight
at that instant, once; marking rows sent *before* sending would lose them instead. The claim is
conditional, so two runs or two processes never send the same row in normal operation.

Crash recovery: every claim carries its sender instance's token (`claimed_by`), and each
running instance keeps a heartbeat row (`SenderInstance`). A claim whose instance has stopped
beating for INSTANCE_STALE (or shut down, deleting its row) is released at once by whichever
instance looks next, so after a crash the rows in flight go out within a minute of the restart
instead of waiting out their lease; a live instance's claims are never taken (the lease stays
as the last resort for an instance that beats but hangs). Each row is marked sent in its own
transaction right after Telegram's answer, so a kill repeats only what was truly in flight.

Quiet hours: a held row keeps its own due time and is marked QUIET_HOLD; every pass re-checks
the held rows against the quiet hours in force now (`held_for_quiet`), so a setting changed
after the hold takes effect: still quiet, held to the new end; no longer quiet, sent now.

The same machine delivers storage.outbox's messages (review cards, confirmations, deletions).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import outbox
from storage.db import SessionFactory, unit_of_work
from storage.models import Reminder, ReminderStatus, SenderInstance, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan
from storage.reminders.rules import Rules

log = logging.getLogger(__name__)
QUIET_HOLD = "held: quiet hours"  # last_error of a row held back for quiet hours
# no heartbeat for this long (four beats missed): the instance is gone; the others notice within
# a count of the instances (bot.scheduler, every 2 s) and send what it had claimed
INSTANCE_STALE = timedelta(seconds=20)


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


async def kinds_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The kind of each of these rows (the sender sends some at once, kicks the rest)."""
    if not ids:
        return {}
    rows = await session.exec(
        select(Reminder.id, Reminder.kind).where(col(Reminder.id).in_(list(ids)))
    )
    return {i: k for i, k in rows.all() if i is not None}


async def recipients(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, Staff]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = await session.exec(select(Staff).where(col(Staff.id).in_(wanted)))
    return {s.id: s for s in rows.all() if s.id is not None}


async def postpone(session: AsyncSession, *, ids: Sequence[int], until: datetime) -> None:
    """Hold rows back (quiet hours) without counting an attempt; marked, so that every pass
    re-checks them against the quiet hours in force (`held_for_quiet`)."""
    if not ids:
        return
    await session.exec(
        update(Reminder)
        .where(
            col(Reminder.id).in_(list(ids)),
            col(Reminder.status).in_((ReminderStatus.pending, ReminderStatus.sending)),
        )
        .values(
            status=ReminderStatus.pending,
            next_attempt_at=until,
            last_error=QUIET_HOLD,
            claimed_by=None,
        )
    )


@dataclass(frozen=True)
class Held:
    """A row held for quiet hours whose own time has come: re-checked at every pass."""

    id: int
    recipient_id: int
    until: datetime


async def held_for_quiet(session: AsyncSession, *, now: datetime, limit: int = 5000) -> list[Held]:
    """Rows held back for quiet hours, due by their own time but not yet by the hold's end."""
    rows = await session.exec(
        select(Reminder.id, Reminder.recipient_id, Reminder.next_attempt_at)
        .where(
            col(Reminder.status) == ReminderStatus.pending,
            col(Reminder.next_attempt_at) > now,
            col(Reminder.last_error) == QUIET_HOLD,
            col(Reminder.due_at) <= now,
            col(Reminder.recipient_id).is_not(None),
        )
        .order_by(col(Reminder.id))
        .limit(limit)
    )
    return [Held(i, r, u) for i, r, u in rows.all() if i is not None and r is not None and u]


async def release_hold(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    """Quiet hours no longer cover these held rows (the setting changed): due now."""
    if ids:
        await session.exec(
            update(Reminder)
            .where(
                col(Reminder.id).in_(list(ids)),
                col(Reminder.status) == ReminderStatus.pending,
                col(Reminder.last_error) == QUIET_HOLD,
            )
            .values(next_attempt_at=now, last_error=None, updated_at=now)
        )


# ---------------------------------------------------------------------------------------------
# sender instances: whose claims are whose, and which instances are gone


def _upsert(session: AsyncSession) -> Any:
    return sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert


async def beat(session: AsyncSession, *, token: str, now: datetime) -> None:
    """This instance lives (written at start-up and every few seconds after)."""
    table = SenderInstance.__table__  # type: ignore[attr-defined]
    statement = _upsert(session)(table).values(token=token, started_at=now, seen_at=now)
    await session.exec(
        statement.on_conflict_do_update(index_elements=["token"], set_={"seen_at": now})
    )


async def release_orphans(
    session: AsyncSession, *, now: datetime, stale: timedelta = INSTANCE_STALE
) -> int:
    """Give back the claims of instances that are gone (no heartbeat within `stale`, or no row
    at all: shut down, or from before instance tokens), due now; returns how many. Claims of
    live instances are left alone. The attempt the crash used stays counted, so a message that
    crashes the bot every time is given up on after max_attempts."""
    await session.exec(delete(SenderInstance).where(col(SenderInstance.seen_at) < now - stale))
    live = select(SenderInstance.token)
    result = await session.exec(
        update(Reminder)
        .where(
            col(Reminder.status) == ReminderStatus.sending,
            or_(col(Reminder.claimed_by).is_(None), col(Reminder.claimed_by).not_in(live)),
        )
        .values(status=ReminderStatus.pending, next_attempt_at=now, claimed_by=None, updated_at=now)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


async def live_instances(session: AsyncSession, *, now: datetime) -> int:
    """How many instances beat within INSTANCE_STALE (at least this one): they share the bot's
    rate limits, which Telegram counts per token (bot.rate_limits)."""
    found = await session.exec(
        select(func.count())
        .select_from(SenderInstance)
        .where(col(SenderInstance.seen_at) >= now - INSTANCE_STALE)
    )
    return max(1, int(found.one()))


async def retire(session: AsyncSession, *, token: str, now: datetime) -> int:
    """A clean shutdown: this instance's unsent claims are due again now, its row removed."""
    result = await session.exec(
        update(Reminder)
        .where(col(Reminder.status) == ReminderStatus.sending, col(Reminder.claimed_by) == token)
        .values(status=ReminderStatus.pending, next_attempt_at=now, claimed_by=None, updated_at=now)
    )
    await session.exec(delete(SenderInstance).where(col(SenderInstance.token) == token))
    return result.rowcount or 0  # type: ignore[attr-defined]


async def stale_at(session: AsyncSession, *, token: str) -> datetime | None:
    """When the earliest other instance holding claims goes stale (None: none holds any)."""
    holders = select(Reminder.claimed_by).where(col(Reminder.status) == ReminderStatus.sending)
    found = await session.exec(
        select(SenderInstance.seen_at).where(
            col(SenderInstance.token) != token, col(SenderInstance.token).in_(holders)
        )
    )
    seen = [s for s in found.all() if s is not None]
    return min(seen) + INSTANCE_STALE if seen else None


async def claim(
    session: AsyncSession,
    *,
    ids: Sequence[int],
    now: datetime,
    lease: timedelta,
    max_attempts: int,
    instance: str | None = None,
) -> list[int]:
    """Take rows for sending: pending (or sending with an expired lease) → sending until
    now + lease, held by `instance` (a sender's token). Conditional, so of two claimers only one
    gets a row. Rows that already used up their attempts (a crash loop, say) are marked failed
    instead of being tried again."""
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
            claimed_by=instance,
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


@dataclass(frozen=True)
class Purge:
    """Runs with the planners, once a day, and plans nothing: it clears finished rows."""

    name: str = "purge"
    every: timedelta | None = timedelta(days=1)

    async def run(self, sessions: SessionFactory, ctx: Plan) -> int:
        async with unit_of_work(sessions) as session:
            removed = await purge(session, rules=ctx.rules, now=ctx.now)
        if removed:
            log.info("purged %d finished reminders", removed)
        return 0


async def depth(session: AsyncSession) -> int:
    """Rows waiting or being sent, due or not (the outbox depth a dashboard watches)."""
    waiting = col(Reminder.status).in_((ReminderStatus.pending, ReminderStatus.sending))
    query = select(func.count()).select_from(Reminder).where(waiting)
    return int((await session.exec(query)).one())
