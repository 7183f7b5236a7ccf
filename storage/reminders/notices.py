"""What claimed reminders say now: each row read by its kind's description, or found no longer
due (its reason went away, or the recipient is no longer the right person)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import Reminder, Staff
from storage.reminders.reading import Notice, Reader
from storage.reminders.registry import BY_KIND
from storage.reminders.rules import Rules
from storage.reminders.samples import sample_notice


async def describe(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    ids: Sequence[int],
    now: datetime,
) -> tuple[list[Notice], list[int]]:
    """The notices of the given rows as the records stand now, and the rows no longer due."""
    if not ids:
        return [], []
    rows = (
        await session.exec(
            select(Reminder).where(col(Reminder.id).in_(list(ids))).order_by(col(Reminder.id))
        )
    ).all()
    return await describe_rows(session, keyring=keyring, rules=rules, rows=rows, now=now)


async def describe_rows(
    session: AsyncSession,
    *,
    keyring: Keyring,
    rules: Rules,
    rows: Sequence[Reminder],
    now: datetime,
) -> tuple[list[Notice], list[int]]:
    """Read the rows kind by kind, loading what they are about in batches."""
    everyone = (await session.exec(select(Staff))).all()
    reader = Reader(session, keyring, rules, now, {s.id: s for s in everyone if s.id is not None})
    notices: list[Notice] = []
    gone: list[int] = []
    by_kind: dict[str, list[Reminder]] = defaultdict(list)
    for row in rows:
        if row.subject_type == "sample":
            notices.append(sample_notice(row))
        else:
            by_kind[row.kind].append(row)
    for kind, group in by_kind.items():
        entry = BY_KIND.get(kind)
        found: dict[int, Notice] = await entry.describe(reader, group) if entry else {}
        for row in group:
            assert row.id is not None
            notice = found.get(row.id)
            if notice is None:
                gone.append(row.id)
            else:
                notices.append(notice)
    return notices, gone
