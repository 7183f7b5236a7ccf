"""Samples (/testreminder): one reminder of each kind, with made-up values, through the real
outbox, so an admin sees how every kind reads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, permissions
from storage.errors import Refused
from storage.models import Reminder, ReminderStatus, ReviewKind, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import add_reminders, dedup_key
from storage.reminders.reading import Notice
from storage.reminders.registry import ACTIONS

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
        "file": "backup-20261122T190000Z.tar",
        "size": "12.3 MB",
        "customers": 12,
        "key_persons": 30,
        "staff": 8,
        "audit": 1234,
        "start": (row.due_at.date() - timedelta(days=7)).isoformat(),
        "end": (row.due_at.date() - timedelta(days=1)).isoformat(),
        "own": 12,
        "team": 5,
    }
    lines: tuple[dict[str, Any], ...] = ()
    if row.kind in (Kind.review_digest, Kind.overdue):  # digests: two sample lines
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
                "dedup_key": dedup_key(kind, "sample", 0, actor.id, stamp),
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
