"""`rejected`: a rejection nobody acted on for REJECTED_REMINDER_DAYS reminds the submitter."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import RecordStatus, Reminder, Review, ReviewKind, ReviewStatus
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row
from storage.reminders.review import About, review_in, review_values, reviews_of

ACTIONS = ("resubmit", "done", "snooze")
RESUBMITTABLE = (
    ReviewKind.customer_new,
    ReviewKind.customer_change,
    ReviewKind.complaint_resolution,
)


async def resubmitted(session: AsyncSession, review: Review) -> bool:
    """Has anything been submitted about the same record since this review was decided?"""
    if review.kind == ReviewKind.complaint_resolution:
        same = col(Review.complaint_id) == review.complaint_id
    else:
        same = and_(
            col(Review.customer_id) == review.customer_id,
            col(Review.kind).in_((ReviewKind.customer_new, ReviewKind.customer_change)),
        )
    later = await session.exec(
        select(Review.id).where(same, col(Review.submitted_at) > review.decided_at).limit(1)
    )
    return later.first() is not None


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """Rejections nobody acted on for REJECTED_REMINDER_DAYS → the submitter, once."""
    wait = timedelta(days=ctx.rules.rejected_days)
    rows = []
    rejected = (
        await session.exec(
            select(Review).where(
                col(Review.status) == ReviewStatus.rejected,
                col(Review.kind).in_(RESUBMITTABLE),
                col(Review.decided_at) <= ctx.now - wait,
                col(Review.decided_at) >= ctx.since - wait - timedelta(days=1),
            )
        )
    ).all()
    for review in rejected:
        submitter = ctx.active(review.submitted_by)
        if submitter is None or review.decided_at is None:
            continue
        if await resubmitted(session, review):
            continue
        rows.append(
            ctx.row(
                Kind.rejected,
                "review",
                review.id,
                review.submitted_by,
                "once",
                review.decided_at + wait,
            )
        )
    return rows


PLANNER = Planner("rejected", find)


async def _read(reader: Reader, row: Reminder, loaded: About) -> Notice | None:
    """Still rejected and not resubmitted; Resubmit only where resubmitting can work."""
    review = review_in(loaded, row, ReviewStatus.rejected)
    _, customers, complaints = loaded
    if (
        review is None
        or review.submitted_by != row.recipient_id
        or not reader.recipient_ok(row)
        or review.decided_at is None
        or await resubmitted(reader.session, review)
    ):
        return None
    customer = customers.get(review.customer_id or 0)
    if customer is None or customer.status == RecordStatus.destroyed:
        return None
    assert row.id is not None
    values = review_values(reader, review, customers, complaints, row.recipient_id)
    values.update(
        number=customer.customer_no,
        days=(reader.now - review.decided_at).days,
        reason=(review.reason or "—")[:200],
    )
    actions = ACTIONS
    if review.kind != ReviewKind.customer_new or customer.status != RecordStatus.rejected:
        actions = tuple(a for a in actions if a != "resubmit")
    return Notice(row.id, row.kind, values, actions, customer_id=customer.id)


describe = per_row(reviews_of, _read)
