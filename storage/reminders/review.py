"""`review` and `review_digest`: a review still pending after REVIEW_REMINDER_HOURS reminds
whoever may decide it, and every morning each decider gets all that waits for them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import permissions
from storage.models import (
    Complaint,
    Customer,
    RecordStatus,
    Reminder,
    Review,
    ReviewStatus,
    Staff,
)
from storage.reminders.kinds import Kind
from storage.reminders.planning import Plan, Planner, Row
from storage.reminders.reading import Notice, Reader, per_row

ACTIONS = ("approve", "reject", "open_review")
# reviews by id, and the customers and complaints they are about
About = tuple[dict[int, Review], dict[int, Customer], dict[int, Complaint]]
DIGEST_LINES = 15


def deciders(
    staff: Iterable[Staff], *, team_id: int | None, submitted_by: int | None
) -> list[Staff]:
    """Who may decide a review: the team's active managers, else the admins; never the submitter
    (the same routing as storage.reviews)."""
    people = [s for s in staff if s.active and s.id != submitted_by]
    managers = [s for s in people if permissions.manages_team(s, team_id)]
    return managers or [s for s in people if permissions.is_admin(s)]


async def find(session: AsyncSession, ctx: Plan) -> list[Row]:
    """A reminder per decider once a review waited REVIEW_REMINDER_HOURS, and each decider's
    morning digest while something waits for them."""
    wait = timedelta(hours=ctx.rules.review_hours)
    rows = []
    pending = (
        await session.exec(select(Review).where(col(Review.status) == ReviewStatus.pending))
    ).all()
    earliest: dict[int, datetime] = {}
    routes: dict[tuple[int | None, int], list[Staff]] = {}
    for review in pending:
        route = (review.team_id, review.submitted_by)
        if route not in routes:
            routes[route] = deciders(
                ctx.staff.values(), team_id=review.team_id, submitted_by=review.submitted_by
            )
        people = routes[route]
        for person in people:
            assert person.id is not None
            earliest[person.id] = min(
                earliest.get(person.id, review.submitted_at), review.submitted_at
            )
            due = review.submitted_at + wait
            if due <= ctx.now + timedelta(days=1):
                rows.append(ctx.row(Kind.review, "review", review.id, person.id, "once", due))
    for person_id, first in earliest.items():
        person = ctx.staff[person_id]
        today = ctx.rules.today_of(person, ctx.now)
        due = ctx.at(person, today, ctx.rules.digest_hour)
        if first <= due:  # only what was already waiting at the digest hour
            rows.append(
                ctx.row(Kind.review_digest, "staff", person_id, person_id, today.isoformat(), due)
            )
    return rows


PLANNER = Planner("reviews", find)


async def subjects(
    reader: Reader, reviews: Iterable[Review]
) -> tuple[dict[int, Customer], dict[int, Complaint]]:
    """The customers and complaints the reviews are about."""
    reviews = list(reviews)
    customers = await reader.load(Customer, (r.customer_id for r in reviews))
    complaints = await reader.load(Complaint, (r.complaint_id for r in reviews))
    return customers, complaints


def review_values(
    reader: Reader,
    review: Review,
    customers: dict[int, Customer],
    complaints: dict[int, Complaint],
    recipient_id: int,
) -> dict[str, Any]:
    """How a review reads in a reminder (a destroyed customer is not named)."""
    customer = customers.get(review.customer_id or 0)
    complaint = complaints.get(review.complaint_id or 0)
    parts = [complaint.complaint_no if complaint else None]
    if customer is not None and customer.status != RecordStatus.destroyed:
        parts += [customer.customer_no, customer.name]
    return {
        "review_id": review.id,
        "review_kind": review.kind,
        "subject": " · ".join(p for p in parts if p) or "—",
        "customer": customer.name if customer is not None else "—",
        "submitter": reader.name(review.submitted_by),
        "hours": int((reader.now - review.submitted_at).total_seconds() // 3600),
        "when": reader.local(review.submitted_at, recipient_id),
    }


def _may_decide(reader: Reader, review: Review, recipient_id: int) -> bool:
    people = deciders(
        reader.staff.values(), team_id=review.team_id, submitted_by=review.submitted_by
    )
    return any(p.id == recipient_id for p in people)


async def reviews_of(reader: Reader, group: Sequence[Reminder]) -> About:
    """The reviews the rows are about, and their customers and complaints."""
    reviews = await reader.load(Review, (r.subject_id for r in group))
    customers, complaints = await subjects(reader, reviews.values())
    return reviews, customers, complaints


def review_in(loaded: About, row: Reminder, status: ReviewStatus) -> Review | None:
    """The row's review, if it is still in `status`."""
    review = loaded[0].get(row.subject_id or 0)
    return review if review is not None and review.status == status else None


async def _read(reader: Reader, row: Reminder, loaded: About) -> Notice | None:
    """Still pending, and the recipient may still decide it."""
    review = review_in(loaded, row, ReviewStatus.pending)
    if review is None or not _may_decide(reader, review, row.recipient_id):
        return None
    _, customers, complaints = loaded
    assert row.id is not None
    return Notice(
        row.id,
        row.kind,
        review_values(reader, review, customers, complaints, row.recipient_id),
        ACTIONS,
        review_id=review.id,
    )


describe = per_row(reviews_of, _read)


async def _pending(
    reader: Reader, group: Sequence[Reminder]
) -> tuple[Sequence[Review], dict[int, Customer], dict[int, Complaint]]:
    """Every pending review, the oldest first, and what they are about."""
    pending = (
        await reader.session.exec(
            select(Review)
            .where(col(Review.status) == ReviewStatus.pending)
            .order_by(col(Review.submitted_at))
        )
    ).all()
    customers, complaints = await subjects(reader, pending)
    return pending, customers, complaints


async def _read_digest(
    reader: Reader,
    row: Reminder,
    loaded: tuple[Sequence[Review], dict[int, Customer], dict[int, Complaint]],
) -> Notice | None:
    """Everything pending the recipient may decide, the oldest first; none: no digest."""
    pending, customers, complaints = loaded
    if not reader.recipient_ok(row):
        return None
    mine = [r for r in pending if _may_decide(reader, r, row.recipient_id)]
    if not mine:
        return None
    assert row.id is not None
    lines = tuple(
        review_values(reader, r, customers, complaints, row.recipient_id)
        for r in mine[:DIGEST_LINES]
    )
    return Notice(
        row.id,
        row.kind,
        {"count": len(mine), "more": max(0, len(mine) - DIGEST_LINES)},
        lines=lines,
    )


describe_digest = per_row(_pending, _read_digest)
