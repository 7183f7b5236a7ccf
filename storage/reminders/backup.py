"""`backup`: after each scheduled backup, every admin is told how it went (file, size, counts),
or that it failed and why. Written by the backup job (bot.scheduler), not planned: the row is
the report, so a restart between the backup and its delivery loses nothing.

The job's once-a-day claim lives here too: a mark in `reminder_plan_runs` that one conditional
write moves to the day's backup slot, so of two bot processes exactly one backs up that slot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.backup import BackupResult, human_size
from storage.models import ReminderPlanRun, ReminderStatus, Staff
from storage.reminders.kinds import Kind
from storage.reminders.planning import add_reminders, dedup_key, dialect_of
from storage.reminders.reading import Notice, Reader, per_row
from storage.reminders.rules import local_moment
from storage.types import utcnow

MARK = "backup"  # its row in reminder_plan_runs: the slot last claimed


def latest_slot(now: datetime, hour: int, zone: tzinfo) -> datetime:
    """The newest moment at `hour` local time that is not after `now` (UTC)."""
    today = now.astimezone(zone).date()
    slot = local_moment(today, hour, zone)
    return slot if slot <= now else local_moment(today - timedelta(days=1), hour, zone)


async def claim(session: AsyncSession, *, slot: datetime) -> bool:
    """Whether this process takes the backup of `slot`: the mark moves to it in one conditional
    UPDATE, which exactly one of several processes wins. The very first time there is no mark:
    it is set to `slot` and nothing is backed up then (the first backup is at the next slot,
    not at whatever hour the bot was first started)."""
    insert = sqlite.insert if dialect_of(session) == "sqlite" else postgresql.insert
    table = ReminderPlanRun.__table__  # type: ignore[attr-defined]
    first = await session.exec(
        insert(table)
        .values(name=MARK, ran_at=slot)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(table.c.name)
    )  # type: ignore[call-overload]
    if first.first() is not None:
        return False
    moved = await session.exec(
        update(ReminderPlanRun)
        .where(col(ReminderPlanRun.name) == MARK, col(ReminderPlanRun.ran_at) < slot)
        .values(ran_at=slot)
    )
    return moved.rowcount == 1


def success_values(result: BackupResult) -> dict[str, Any]:
    """What the admins' message shows of a backup: no personal data, only its name and sizes."""
    tables = result.manifest.tables
    head = result.manifest.audit_head
    return {
        "file": result.path.name,
        "size": human_size(result.size),
        "customers": tables.get("customers", 0),
        "key_persons": tables.get("key_persons", 0),
        "visits": tables.get("visits", 0),
        "complaints": tables.get("complaints", 0),
        "staff": tables.get("staff", 0),
        "audit": head.id if head else 0,
    }


def failure_values(reason: str) -> dict[str, Any]:
    return {"failed": True, "reason": reason}


async def queue_report(
    session: AsyncSession, *, values: dict[str, Any], slot: datetime, now: datetime | None = None
) -> int:
    """One outbox row per active admin, due now; how many were queued."""
    now = now or utcnow()
    people = (await session.exec(select(Staff).where(*permissions.admins()))).all()
    period = slot.strftime("%Y%m%dT%H%M")
    rows = []
    for person in people:
        if person.id is None or not permissions.can_back_up(person):
            continue
        rows.append(
            {
                "dedup_key": dedup_key(Kind.backup, "backup", 0, person.id, period),
                "kind": Kind.backup,
                "subject_type": "backup",
                "subject_id": None,
                "recipient_id": person.id,
                "due_at": now,
                "next_attempt_at": now,
                "status": ReminderStatus.pending,
                "attempts": 0,
                "payload": json.dumps(values, sort_keys=True),
                "created_at": now,
                "updated_at": now,
            }
        )
    return await add_reminders(session, rows)


async def _nothing(reader: Reader, group: Sequence[Any]) -> None:
    return None


async def _read(reader: Reader, row: Any, _: None) -> Notice | None:
    """The report as written, for a recipient who may still see backups."""
    person = reader.staff.get(row.recipient_id)
    if person is None or not permissions.can_back_up(person) or not row.payload:
        return None
    assert row.id is not None
    return Notice(row.id, row.kind, json.loads(row.payload))


describe = per_row(_nothing, _read)
