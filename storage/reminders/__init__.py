"""Reminders (SPEC section 7): what is due, computed from the records, and the outbox.

The database decides what is due (STYLE habit 5); the scheduler only wakes up and asks.

    kinds.py       the kinds, and the record states they care about
    rules.py       the settings reminders follow; time zones, local hours, quiet hours
    planning.py    the planner skeleton every kind runs on; outbox rows, keys, inserts
    delivery.py    the outbox's state machine: due, claim with a lease, sent, defer, fail,
                   cancel; the purge of finished rows
    reading.py     `Notice` (what a reminder says, as data for rendering) and the batch reader
    notices.py     claimed rows → notices, each by its kind's description
    actions.py     the buttons: snooze, reschedule, done, confirm, open one
    samples.py     /testreminder's samples
    registry.py    the table of kinds (description, buttons, planner) and the planning walk
    followup.py, overdue.py, review.py (and the digest), rejected.py, complaint.py (soon and
    overdue), birthday.py, stale.py, survey.py, weekly.py, audit_head.py: one module per kind,
    holding its planner and its description

Payloads and keys hold ids, kinds and periods, never personal data: a birthday reminder is keyed
by the year, and its text is rendered at delivery from the sealed value. Its due time still
hints at the day, so sent birthday rows are purged soon after their window has passed.

storage.outbox (review cards, confirmations, deletions) writes rows to the same table in the
change's own transaction; delivery.py's state machine sends them too.
"""

from storage.reminders.actions import (
    MAX_RESCHEDULE_DAYS,
    RESCHEDULE_DAYS,
    SNOOZE_DAYS,
    Outcome,
    actionable,
    confirm_accurate,
    done,
    notice_of,
    reschedule,
    siblings_of,
    snooze,
)
from storage.reminders.birthday import birthday_in, birthday_notices, parse_birthday
from storage.reminders.complaint import complaint_warning_at
from storage.reminders.delivery import (
    INSTANCE_STALE,
    QUIET_HOLD,
    Due,
    Held,
    beat,
    cancel,
    claim,
    defer,
    due_now,
    fail,
    held_for_quiet,
    kinds_of,
    live_instances,
    mark_sent,
    postpone,
    purge,
    recipients,
    release_hold,
    release_orphans,
    retire,
    retry_later,
    stale_at,
)
from storage.reminders.followup import followup_query
from storage.reminders.kinds import Kind
from storage.reminders.notices import describe
from storage.reminders.overdue import overdue_query
from storage.reminders.planning import add_reminders
from storage.reminders.reading import Notice, effective_followup
from storage.reminders.registry import ACTIONS, REGISTRY, plan
from storage.reminders.review import deciders
from storage.reminders.rules import Rules, hours_range, local_moment, quiet_until, zone
from storage.reminders.samples import queue_samples, sample_notice
from storage.reminders.weekly import summary_numbers

__all__ = [
    "ACTIONS",
    "INSTANCE_STALE",
    "MAX_RESCHEDULE_DAYS",
    "QUIET_HOLD",
    "REGISTRY",
    "RESCHEDULE_DAYS",
    "SNOOZE_DAYS",
    "Due",
    "Held",
    "Kind",
    "Notice",
    "Outcome",
    "Rules",
    "actionable",
    "add_reminders",
    "beat",
    "birthday_in",
    "birthday_notices",
    "cancel",
    "claim",
    "complaint_warning_at",
    "confirm_accurate",
    "deciders",
    "defer",
    "describe",
    "done",
    "due_now",
    "effective_followup",
    "fail",
    "followup_query",
    "held_for_quiet",
    "hours_range",
    "kinds_of",
    "live_instances",
    "local_moment",
    "mark_sent",
    "notice_of",
    "overdue_query",
    "parse_birthday",
    "plan",
    "postpone",
    "purge",
    "queue_samples",
    "quiet_until",
    "recipients",
    "release_hold",
    "release_orphans",
    "reschedule",
    "retire",
    "retry_later",
    "sample_notice",
    "siblings_of",
    "snooze",
    "stale_at",
    "summary_numbers",
    "zone",
]
