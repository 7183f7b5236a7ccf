"""A complaint's own removal (issue 11 item 7): asked for with a reason by a manager of the
customer's team or an admin (entered by mistake, a duplicate, an erasure request), decided by a
second person through the review flow (storage.reviews calls `ready` and `APPLY`).

Approval erases the complaint for good (storage.erasure.erase_complaint: its texts,
attachments, reminders, the values of its history lines, and a line in the erasure ledger on
commit, so a backup restored later does not bring it back). History keeps that it happened:
a "removal requested" line (showing the decision) and a "removed" line, neither with values.
Its number is never given to another complaint (storage.numbers only counts up).

One review at a time per complaint: a complaint whose resolution awaits a decision is not
removed from under its decider; that decision comes first (`under_review`).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, erasure, life_cycle, permissions, vault
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    ChangeRecord,
    Complaint,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)

REASON_MAX = life_cycle.REASON_MAX
KIND = ReviewKind.complaint_removal
# history actions (card.history.action.<action>); neither carries values
REQUESTED = "remove_request"
REMOVED = "remove"
# customers whose complaints may be removed: not archived (read-only), not destroyed (gone)
_LIVE = frozenset(
    {RecordStatus.draft, RecordStatus.pending, RecordStatus.rejected, RecordStatus.approved}
)


def may_request(actor: Staff, customer: Customer) -> bool:
    """Whether to offer "Remove" on a complaint of this customer (`request` re-checks)."""
    return permissions.can_request_complaint_removal(actor, customer) and customer.status in _LIVE


async def _deny(session: AsyncSession, actor: Staff, complaint_id: int, exists: bool) -> None:
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="complaint",
        entity_id=complaint_id,
        detail={"purpose": "complaint.remove_request", "exists": exists},
    )


async def pending_of(session: AsyncSession, complaint_id: int) -> Review | None:
    """The complaint's pending review of any kind (its resolution, or a removal)."""
    return (
        await session.exec(
            select(Review)
            .where(Review.complaint_id == complaint_id, Review.status == ReviewStatus.pending)
            .order_by(col(Review.id))
            .limit(1)
        )
    ).first()


async def requestable(
    session: AsyncSession, *, actor: Staff, complaint_id: int, lock: bool = False
) -> tuple[Complaint, Customer]:
    """The complaint and its customer if `actor` may ask for its removal now; else raises
    NotFound (no such complaint, or one of a customer the actor may not see) or Refused:
    not_allowed, archived, under_review. Refusals of someone who may not are audited."""
    query = select(Complaint).where(Complaint.id == complaint_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    complaint = (await session.exec(query)).first()
    customer = await session.get(Customer, complaint.customer_id) if complaint else None
    if (
        complaint is None
        or customer is None
        or customer.status == RecordStatus.destroyed
        or not permissions.can_view_customer(actor, customer)
    ):
        await _deny(session, actor, complaint_id, complaint is not None)
        raise NotFound()
    if not permissions.can_request_complaint_removal(actor, customer):
        await _deny(session, actor, complaint_id, True)
        raise Refused("not_allowed")
    if customer.status not in _LIVE:
        raise Refused("archived")
    if await pending_of(session, complaint_id) is not None:
        raise Refused("under_review")
    return complaint, customer


async def request(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint_id: int,
    reason: str | None,
    now: datetime,
) -> Review:
    """File the request to remove a complaint as a pending review, with a history line.

    The caller queues the deciders' cards (storage.outbox.queue_review_cards) in the same unit
    of work. Raises as `requestable`, and Refused reason_required / reason_too_long; refusals
    come before any write, so a caller may catch them and commit the audit entry.
    """
    complaint, customer = await requestable(
        session, actor=actor, complaint_id=complaint_id, lock=True
    )
    text = life_cycle.request_reason(reason)
    assert complaint.id is not None and customer.id is not None
    review = Review(
        kind=KIND,
        customer_id=customer.id,
        complaint_id=complaint.id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        request_reason=text,
        created_at=now,
        updated_at=now,
    )
    session.add(review)
    await session.flush()
    assert review.id is not None
    # the number, for the card once the complaint is gone (erase_complaint unlinks the review)
    key = await vault.data_key(session, keyring, customer.id)
    review.changes_sealed = vault.seal(
        key, {"complaint_no": complaint.complaint_no}, table="reviews", row_id=review.id
    )
    session.add(review)
    await _line(session, complaint, actor, REQUESTED, now, review_id=review.id)
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={
            "kind": KIND,
            "customer_id": customer.id,
            "complaint_id": complaint.id,
            "complaint_no": complaint.complaint_no,
        },
    )
    return review


async def removed_number(session: AsyncSession, keyring: Keyring, review: Review) -> str | None:
    """The number of the complaint a removal review is about, also once it is gone (None when
    its customer was destroyed since: the seal went with its key)."""
    if review.kind != KIND or review.changes_sealed is None or review.customer_id is None:
        return None
    customer = await session.get(Customer, review.customer_id)
    if customer is None or customer.status == RecordStatus.destroyed:
        return None
    key = await vault.data_key(session, keyring, review.customer_id)
    opened = vault.unseal(key, review.changes_sealed, table="reviews", row_id=review.id or 0)
    number = opened.get("complaint_no") if isinstance(opened, dict) else None
    return str(number) if number else None


async def _line(
    session: AsyncSession,
    complaint: Complaint,
    actor: Staff,
    action: str,
    now: datetime,
    review_id: int | None = None,
) -> None:
    await vault.add_change(
        session,
        b"",
        ChangeRecord(
            entity="complaint",
            entity_id=complaint.id or 0,
            customer_id=complaint.customer_id,
            action=action,
            changed_by=actor.id,
            changed_at=now,
            review_id=review_id,
        ),
        None,
    )


# ---------------------------------------------------------------------------------------------
# deciding (called by storage.reviews.decide, inside its savepoint)


def ready(complaint: Complaint | None, customer: Customer | None) -> bool:
    """Whether the complaint is still there to remove, on a customer that may change."""
    return complaint is not None and customer is not None and customer.status in _LIVE


async def _apply(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    """Approved: erase the complaint, say so in its history, audit it with its number.
    Rejected: nothing changes (the request's history line shows the rejection)."""
    if not approve:
        return
    now = review.decided_at or review.updated_at
    complaint = (
        await session.exec(
            select(Complaint)
            .where(Complaint.id == review.complaint_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    customer = await session.get(Customer, complaint.customer_id) if complaint else None
    if complaint is None or not ready(complaint, customer):
        raise Refused("subject_changed")
    number, complaint_id = complaint.complaint_no, complaint.id or 0
    customer_id = complaint.customer_id
    await _line(session, complaint, actor, REMOVED, now)
    wiped = await erasure.erase_complaint(session, complaint_id=complaint_id, now=now)
    await audit.record(
        session,
        action="complaint.removed",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="complaint",
        entity_id=complaint_id,
        detail={
            "complaint_no": number,
            "customer_id": customer_id,
            "review_id": review.id,
            "requested_by": review.submitted_by,
            **(wiped.detail() if wiped else {}),
        },
    )


APPLY = {KIND: _apply}
