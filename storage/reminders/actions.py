"""Acting on a reminder (its buttons): snooze, reschedule, done, confirm, open. Every press
re-checks who pressed and the state of things."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, vault
from storage.crypto import Keyring
from storage.customers import visible_customer
from storage.errors import Refused
from storage.models import Customer, RecordStatus, Reminder, ReminderStatus, Staff
from storage.reminders.kinds import LIVE, Kind
from storage.reminders.notices import describe_rows
from storage.reminders.reading import Notice, effective_followup
from storage.reminders.registry import ACTIONS
from storage.reminders.rules import Rules, local_moment

SNOOZE_DAYS = (1, 3)
RESCHEDULE_DAYS = (1, 3, 7, 14)
MAX_RESCHEDULE_DAYS = 366
FINAL_ACTS = ("done", "confirmed", "rescheduled")
LIST_LIMIT = 500  # "show all" reads at most this many of one message's reminders


@dataclass(frozen=True)
class Outcome:
    """What an action did, for the reply."""

    action: str
    until: datetime | None = None  # snoozed until
    next_followup_on: date | None = None


async def _denied(
    session: AsyncSession, *, actor: Staff, reminder_id: int, action: str, found: Reminder | None
) -> None:
    """Audit a press on a reminder that is not the actor's (forged, or someone else's)."""
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="reminder",
        entity_id=reminder_id,
        detail={"purpose": f"reminder.{action}", "exists": found is not None},
    )


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
        await _denied(session, actor=actor, reminder_id=reminder_id, action=action, found=reminder)
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
    # archived or destroyed since: read-only, nothing left to follow up
    if customer.owner_id != actor.id or customer.status not in LIVE:
        raise Refused("reminder_outdated")
    return customer


async def snooze(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    actor: Staff,
    reminder_id: int,
    days: int,
    now: datetime,
) -> Outcome:
    """Remind again `days` days from today at the follow-up hour (FOLLOWUP_HOUR, in the
    person's zone: the company's unless they set their own), not 24 hours from the press.

    A follow-up's snooze moves the customer's own next follow-up date to that day (audited,
    with its history line, by the same rule as a reschedule), so /my and the managers' overdue
    digest stop calling it overdue; the planner then reminds on that day as for any date. Other
    kinds are sent again then; their records stay as they are.
    """
    if days not in SNOOZE_DAYS:
        raise Refused("not_allowed")
    reminder = await _actionable(session, actor=actor, reminder_id=reminder_id, action="snooze")
    on = rules.today_of(actor, now) + timedelta(days=days)
    until = local_moment(on, rules.followup_hour, rules.zone_of(actor))
    moved = None
    if reminder.kind == Kind.followup:
        customer = await _followup_customer(
            session, actor=actor, reminder=reminder, action="snooze", rules=rules
        )
        await _set_next_followup(
            session,
            keyring=keyring,
            actor=actor,
            customer=customer,
            on=on,
            now=now,
            reminder=reminder,
        )
        moved = on
        # the planner writes the reminder of the new day; this one is finished with
        reminder.snoozed_until, reminder.acted, reminder.acted_at = until, "snoozed", now
    else:
        if reminder.subject_type == "customer" and reminder.subject_id is not None:
            await _own_customer(session, actor=actor, reminder=reminder, action="snooze")
        reminder.status, reminder.due_at, reminder.next_attempt_at = (
            ReminderStatus.pending,
            until,
            until,
        )
        reminder.snoozed_until, reminder.acted, reminder.acted_at = until, "snoozed", now
        reminder.attempts, reminder.last_error = 0, None
    reminder.updated_at = now
    session.add(reminder)
    await audit.record(
        session,
        action="reminder.snooze",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="reminder",
        entity_id=reminder.id,
        detail={"kind": reminder.kind, "days": days, "moved_followup": moved is not None},
    )
    return Outcome("snoozed", until=until, next_followup_on=moved)


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
        vault.customer_change(customer.id, action="update", changed_by=actor.id, changed_at=now),
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
        vault.customer_change(customer.id, action="confirm", changed_by=actor.id, changed_at=now)
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
        await _denied(session, actor=actor, reminder_id=reminder_id, action="open", found=reminder)
        return None
    if reminder.status != ReminderStatus.sent or reminder.acted in FINAL_ACTS:
        return None
    notices, _gone = await describe_rows(
        session, keyring=keyring, rules=rules, rows=[reminder], now=now
    )
    return notices[0] if notices else None


async def siblings_of(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    actor: Staff,
    reminder_id: int,
    now: datetime,
) -> list[Notice] | None:
    """Every reminder of the same kind that came in the same message as this one (a backlog
    whose tail was only counted), as they read now, still open: for "show all". None if the
    reminder is not the actor's (audited)."""
    reminder = await session.get(Reminder, reminder_id)
    if reminder is None or reminder.recipient_id != actor.id or not actor.active:
        await _denied(session, actor=actor, reminder_id=reminder_id, action="list", found=reminder)
        return None
    query = select(Reminder).where(
        col(Reminder.recipient_id) == actor.id,
        col(Reminder.kind) == reminder.kind,
        col(Reminder.status) == ReminderStatus.sent,
    )
    if reminder.message_id is not None:
        query = query.where(
            col(Reminder.chat_id) == reminder.chat_id,
            col(Reminder.message_id) == reminder.message_id,
        )
    else:
        query = query.where(col(Reminder.id) == reminder.id)
    rows = (await session.exec(query.order_by(col(Reminder.id)).limit(LIST_LIMIT))).all()
    open_rows = [r for r in rows if r.acted not in FINAL_ACTS and r.acted != "snoozed"]
    notices, _gone = await describe_rows(
        session, keyring=keyring, rules=rules, rows=open_rows, now=now
    )
    return notices
