"""Hand-over (离职/调岗交接): what a leaver or mover still holds, kept until successors take it.

Deactivating or moving someone who still holds records opens a `Handover` in the same
transaction (`open_for`); the records wait there, in the database, until the successors are
chosen, so a restart in the middle resumes it. Moving the records is storage.ownership's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit
from storage.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    Handover,
    HandoverReason,
    HandoverStatus,
    RecordStatus,
    Reminder,
    ReminderStatus,
    Review,
    ReviewStatus,
    Staff,
)

# what a person can hold: customers in these states are theirs to follow up
HELD_STATUSES = (
    RecordStatus.draft,
    RecordStatus.pending,
    RecordStatus.approved,
    RecordStatus.rejected,
    RecordStatus.archived,
)

# reminders that follow a record to its new holder (the rest, such as a manager's review
# notices, are for whoever holds the role and lapse with an inactive recipient)
MOVABLE_REMINDERS = ("customer", "complaint")


@dataclass(frozen=True)
class Holdings:
    """What one person still holds: customers they own (not in the pool), open complaints they
    handle, pending reviews they submitted, and pending reminders addressed to them."""

    customers: int = 0
    complaints: int = 0
    reviews: int = 0
    reminders: int = 0
    followups: int = 0  # of `customers`: those with a next follow-up date

    @property
    def empty(self) -> bool:
        return not (self.customers or self.complaints or self.reviews or self.reminders)


def owned_customers(staff_id: int) -> list[object]:
    """WHERE clauses on Customer: the customers `staff_id` holds (the pool's are the pool's)."""
    return [
        Customer.owner_id == staff_id,
        col(Customer.status).in_(HELD_STATUSES),
        col(Customer.pooled_at).is_(None),
    ]


def handled_complaints(staff_id: int) -> list[object]:
    """WHERE clauses on Complaint: the open complaints `staff_id` handles."""
    return [Complaint.handler_id == staff_id, Complaint.status != ComplaintStatus.closed]


async def _count(session: AsyncSession, model: type, clauses: list[object]) -> int:
    result = await session.exec(select(func.count()).select_from(model).where(*clauses))
    return int(result.one())


async def holdings(session: AsyncSession, staff_id: int) -> Holdings:
    """What `staff_id` still holds (module docstring); all zero means nothing to hand over."""
    customers = owned_customers(staff_id)
    return Holdings(
        customers=await _count(session, Customer, customers),
        complaints=await _count(session, Complaint, handled_complaints(staff_id)),
        reviews=await _count(
            session,
            Review,
            [Review.submitted_by == staff_id, Review.status == ReviewStatus.pending],
        ),
        reminders=await _count(
            session,
            Reminder,
            [
                Reminder.recipient_id == staff_id,
                Reminder.status == ReminderStatus.pending,
                col(Reminder.subject_type).in_(MOVABLE_REMINDERS),
            ],
        ),
        followups=await _count(
            session, Customer, [*customers, col(Customer.next_followup_on).is_not(None)]
        ),
    )


async def open_handover(session: AsyncSession, staff_id: int) -> Handover | None:
    """The hand-over of `staff_id` still open, if any (there is at most one per person)."""
    return (
        await session.exec(
            select(Handover).where(
                Handover.from_staff_id == staff_id, Handover.status == HandoverStatus.open
            )
        )
    ).first()


async def open_for(
    session: AsyncSession,
    *,
    actor: Staff | None,
    staff: Staff,
    reason: HandoverReason,
    new_team_id: int | None = None,
) -> Handover | None:
    """Open (or return the already open) hand-over of `staff`, if they hold anything.

    Called by storage.staff in the transaction that deactivates or moves them; the caller has
    checked that `actor` may. None when there is nothing to hand over.
    """
    assert staff.id is not None
    existing = await open_handover(session, staff.id)
    if existing is not None:
        return existing
    if (await holdings(session, staff.id)).empty:
        return None
    handover = Handover(
        from_staff_id=staff.id,
        started_by=actor.id if actor else None,
        reason=reason,
        new_team_id=new_team_id,
    )
    session.add(handover)
    await session.flush()
    await audit.record(
        session,
        action="handover.open",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity="handover",
        entity_id=handover.id,
        detail={"staff_id": staff.id, "reason": reason, "new_team_id": new_team_id},
    )
    return handover
