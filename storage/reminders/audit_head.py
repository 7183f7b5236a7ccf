"""`audit_head`: every AUDIT_HEAD_DAYS the audit log's head (id, MAC) goes to each admin, so a
copy lives outside the database: a log cut or rewritten later no longer reaches a head an admin
was sent."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, permissions
from storage.models import AuditEntry, Reminder
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """A row per admin at the digest hour on the same days for everyone; the head itself is
    read at delivery."""
    every = ctx.rules.audit_head_days
    if every <= 0:
        return []
    rows = []
    for person in ctx.staff.values():
        if not permissions.can_read_audit_log(person) or person.id is None:
            continue
        today = ctx.rules.today_of(person, ctx.now)
        if today.toordinal() % every:
            continue
        due = ctx.at(person, today, ctx.rules.digest_hour)
        rows.append(ctx.row(Kind.audit_head, "staff", person.id, person.id, today.isoformat(), due))
    return rows


PLANNER = Planner("audit_head", find)


async def _head(reader: Reader, group: Sequence[Reminder]) -> AuditEntry | None:
    """The audit log's newest entry, read once for all the rows."""
    return await audit.head(reader.session)


async def _read(reader: Reader, row: Reminder, newest: AuditEntry | None) -> Notice | None:
    """The newest entry now, for a recipient who is still an admin."""
    person = reader.staff.get(row.recipient_id)
    if newest is None or person is None or not permissions.can_read_audit_log(person):
        return None
    assert row.id is not None
    return Notice(row.id, row.kind, {"entry": newest.id, "mac": newest.mac})


describe = per_row(_head, _read)
