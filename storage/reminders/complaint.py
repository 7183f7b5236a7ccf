"""`complaint_soon` and `complaint_overdue`: an open complaint nearly due, or past its due time,
reminds its handler and the team's managers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.complaints import allowed_actions
from storage.models import Complaint, Customer, RecordStatus, Reminder, Staff
from storage.reminders.kinds import OPEN_COMPLAINTS, Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row


def _people(ctx: Plan, complaint: Complaint, team_id: int | None) -> list[Staff]:
    people = [ctx.active(complaint.handler_id or complaint.received_by)]
    people += ctx.managers(team_id)
    seen: dict[int, Staff] = {}
    for person in people:
        if person is not None and person.id is not None:
            seen.setdefault(person.id, person)
    return list(seen.values())


def _period(complaint: Complaint) -> str:
    """The due time in a row's key: a complaint given a new due time is reminded anew."""
    return complaint.due_at.astimezone(UTC).strftime("%Y%m%dT%H%M")


def complaint_warning_at(complaint: Complaint, warning_hours: int) -> datetime:
    """When to warn that a complaint is nearly due: COMPLAINT_WARNING_HOURS before, but never
    earlier than halfway through its time (a 24-hour complaint is not 'nearly due' at once)."""
    halfway = complaint.received_at + (complaint.due_at - complaint.received_at) / 2
    return max(complaint.due_at - timedelta(hours=warning_hours), halfway)


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """The warning (while not yet due) and the overdue notice, per person concerned."""
    rows = []
    horizon = ctx.now + timedelta(hours=ctx.rules.complaint_warning_hours, days=1)
    found = (
        await session.exec(
            select(Complaint, Customer.team_id)
            .join(Customer, col(Customer.id) == col(Complaint.customer_id))
            .where(
                col(Complaint.status).in_(OPEN_COMPLAINTS),
                col(Complaint.due_at) <= horizon,
                col(Customer.status) != RecordStatus.destroyed,
            )
        )
    ).all()
    for complaint, team_id in found:
        period = _period(complaint)
        warn_at = complaint_warning_at(complaint, ctx.rules.complaint_warning_hours)
        for person in _people(ctx, complaint, team_id):
            assert person.id is not None
            if ctx.now < complaint.due_at:
                rows.append(
                    ctx.row(
                        Kind.complaint_soon, "complaint", complaint.id, person.id, period, warn_at
                    )
                )
            rows.append(
                ctx.row(
                    Kind.complaint_overdue,
                    "complaint",
                    complaint.id,
                    person.id,
                    period,
                    complaint.due_at,
                )
            )
    return rows


PLANNER = Planner("complaints", find)


async def _load(
    reader: Reader, group: Sequence[Reminder]
) -> tuple[dict[int, Complaint], dict[int, Customer]]:
    """The complaints the rows are about, and their customers."""
    return await reader.with_customers(Complaint, group)


async def _read(
    reader: Reader, row: Reminder, loaded: tuple[dict[int, Complaint], dict[int, Customer]]
) -> Notice | None:
    """Still open, still due then, and the recipient still handles or manages it."""
    complaints, customers = loaded
    complaint = complaints.get(row.subject_id or 0)
    if complaint is None or complaint.status not in OPEN_COMPLAINTS:
        return None
    customer = customers.get(complaint.customer_id)
    if not row.dedup_key.endswith(f":{_period(complaint)}") or customer is None:
        return None
    people = [complaint.handler_id or complaint.received_by]
    people += [s.id for s in reader.staff.values() if permissions.manages_team(s, customer.team_id)]
    if row.recipient_id not in people or not reader.recipient_ok(row):
        return None
    assert row.id is not None
    recipient = reader.staff[row.recipient_id or 0]  # recipient_ok: present and active
    # the complaint flow's own rule (storage.complaints) says what this person may do now; the
    # buttons are that flow's `cx:`, which checks again at the press
    acts = [a for a in allowed_actions(recipient, complaint, customer) if a in ("take", "resolve")]
    return Notice(
        row.id,
        row.kind,
        {
            "number": complaint.complaint_no,
            "customer": customer.name,
            "severity": complaint.severity,
            "due": reader.local(complaint.due_at, row.recipient_id),
        },
        (*acts, "open_complaint"),
        customer_id=customer.id,
        complaint_id=complaint.id,
    )


describe = per_row(_load, _read)
