"""A customer's later life (SPEC section 3): archiving (合作终止), reactivation, destruction (销毁).

Each is a request with a reason and a decision by a second person through the review flow
(storage.reviews decides, and calls `ready` and `APPLY` below for these kinds):
- archive: an approved customer becomes `archived`, read-only, out of /my, the pool and the
  reminders; asked for by its owner or a manager of its team (or an admin);
- reactivate: an archived customer is `approved` again, due for a follow-up today; asked for by
  the same people;
- destroy: an archived customer (any live one on a PIPL erasure request, `pipl=True`) has its
  personal data erased for good (storage.erasure) and keeps a tombstone; asked for by a manager
  of its team or an admin.
The decider is a manager of the team or an admin, never the requester (storage.reviews). One
request at a time: a customer with any pending review gets no second one.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, erasure, permissions, validation, vault
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)

REASON_MAX = 500
KINDS = frozenset({ReviewKind.archive, ReviewKind.reactivate, ReviewKind.destroy})
# what each request needs the customer to be (destroy on a PIPL request: any live status)
_FROM = {
    ReviewKind.archive: frozenset({RecordStatus.approved}),
    ReviewKind.reactivate: frozenset({RecordStatus.archived}),
    ReviewKind.destroy: frozenset({RecordStatus.archived}),
}
_PIPL_FROM = frozenset(
    {RecordStatus.pending, RecordStatus.approved, RecordStatus.rejected, RecordStatus.archived}
)
_OPEN_COMPLAINT = (ComplaintStatus.open, ComplaintStatus.in_progress, ComplaintStatus.reopened)
_OPEN_COMPLAINT += (ComplaintStatus.resolved,)
# history actions (card.history.action.<action>)
REQUESTED = {
    ReviewKind.archive: "archive_request",
    ReviewKind.reactivate: "reactivate_request",
    ReviewKind.destroy: "destroy_request",
}
DONE = {
    ReviewKind.archive: "archive",
    ReviewKind.reactivate: "reactivate",
    ReviewKind.destroy: "destroy",
}


def may_request(actor: Staff, customer: Customer, kind: str) -> bool:
    """Whether `actor` may ask for `kind` on `customer` (what to offer; `request` re-checks)."""
    if kind == ReviewKind.destroy:
        return permissions.can_request_destruction(actor, customer)
    return permissions.can_request_archive(actor, customer)


def status_allows(customer: Customer, kind: str, *, pipl: bool = False) -> bool:
    """Whether the customer is in the state `kind` starts from."""
    allowed = _PIPL_FROM if pipl and kind == ReviewKind.destroy else _FROM[ReviewKind(kind)]
    return customer.status in allowed


async def pending_of(session: AsyncSession, customer_id: int) -> Review | None:
    """The customer's pending review of any kind, if there is one."""
    return (
        await session.exec(
            select(Review)
            .where(Review.customer_id == customer_id, Review.status == ReviewStatus.pending)
            .order_by(col(Review.id))
            .limit(1)
        )
    ).first()


async def has_open_complaints(session: AsyncSession, customer_id: int) -> bool:
    found = await session.exec(
        select(Complaint.id)
        .where(
            Complaint.customer_id == customer_id,
            col(Complaint.status).in_([str(s) for s in _OPEN_COMPLAINT]),
        )
        .limit(1)
    )
    return found.first() is not None


def request_reason(reason: str | None) -> str:
    """A request's reason, checked (1-500 characters): every request of a second person's
    decision asks for one (life-cycle requests, complaint removals)."""
    try:
        return validation.text(reason or "", max_len=REASON_MAX)
    except validation.Invalid as error:
        code = "reason_required" if error.code == "empty" else "reason_too_long"
        raise Refused(code, limit=REASON_MAX) from None


async def check(
    session: AsyncSession, *, actor: Staff, customer: Customer, kind: str, pipl: bool = False
) -> None:
    """Whether `actor` may ask for `kind` on `customer` now, one the actor may see: raises
    Refused not_allowed, wrong_status (status=...), under_review or open_complaints. `request`
    runs it, and the chat before it asks for the reason (storage.life_cycle_offers)."""
    if not may_request(actor, customer, kind):
        raise Refused("not_allowed")
    if not status_allows(customer, kind, pipl=pipl):
        raise Refused("wrong_status", status=customer.status)
    assert customer.id is not None
    if await pending_of(session, customer.id) is not None:
        raise Refused("under_review")
    if kind == ReviewKind.archive and await has_open_complaints(session, customer.id):
        raise Refused("open_complaints")


async def request(
    session: AsyncSession,
    *,
    actor: Staff,
    customer_id: int,
    kind: str,
    reason: str | None,
    now: datetime,
    pipl: bool = False,
) -> Review:
    """File an archive, reactivation or destruction request as a pending review.

    The caller queues the deciders' notices (storage.outbox.queue_review_cards) in the same
    unit of work. Raises NotFound (no such customer, or one the actor may not see: audited),
    Refused: not_allowed, wrong_status (status=...), under_review (another review pending),
    open_complaints (archiving one with complaints still open), reason_required,
    reason_too_long.
    """
    kind = ReviewKind(kind)
    if kind not in KINDS:
        raise ValueError(f"{kind} is not a life-cycle request")
    customer = (
        await session.exec(select(Customer).where(Customer.id == customer_id).with_for_update())
    ).first()
    if customer is None or not permissions.can_view_customer(actor, customer):
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="customer",
            entity_id=customer_id,
            detail={"purpose": f"{kind}_request", "exists": customer is not None},
        )
        raise NotFound()
    await check(session, actor=actor, customer=customer, kind=kind, pipl=pipl)
    text = request_reason(reason)
    review = Review(
        kind=kind,
        customer_id=customer_id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        request_reason=text,
    )
    session.add(review)
    await session.flush()
    assert review.id is not None
    await vault.add_change(
        session,
        b"",
        vault.customer_change(
            customer_id,
            action=REQUESTED[kind],
            changed_by=actor.id,
            changed_at=now,
            review_id=review.id,
        ),
        None,
    )
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={"kind": kind, "customer_id": customer_id, "pipl": pipl},
    )
    return review


# ---------------------------------------------------------------------------------------------
# deciding (called by storage.reviews.decide, inside its savepoint)


def ready(review: Review, customer: Customer | None) -> bool:
    """Whether the customer is still where the request found it."""
    if customer is None:
        return False
    if review.kind == ReviewKind.destroy:
        return customer.status in _PIPL_FROM
    return customer.status in _FROM[ReviewKind(review.kind)]


async def _locked(session: AsyncSession, review: Review) -> Customer:
    customer = (
        await session.exec(
            select(Customer)
            .where(Customer.id == review.customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if customer is None or not ready(review, customer):
        raise Refused("subject_changed")
    return customer


async def _line(
    session: AsyncSession, review: Review, actor: Staff, action: str, now: datetime
) -> None:
    assert review.customer_id is not None
    await vault.add_change(
        session,
        b"",
        vault.customer_change(
            review.customer_id,
            action=action,
            changed_by=actor.id,
            changed_at=now,
            review_id=review.id,
        ),
        None,
    )


async def _apply_archive(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    now = review.decided_at or review.updated_at
    customer = await _locked(session, review)
    if approve and await has_open_complaints(session, customer.id or 0):
        raise Refused("open_complaints")  # logged while the request waited: close them first
    if approve:
        customer.status, customer.archived_at = RecordStatus.archived, now
        customer.pooled_at = None  # nobody claims a customer whose cooperation ended
        customer.next_followup_on = None
        customer.version += 1
        customer.updated_at = now
        session.add(customer)
        await erasure.cancel_reminders_about(session, customer.id or 0, now)
    await _line(session, review, actor, DONE[ReviewKind.archive] if approve else "reject", now)


async def _apply_reactivate(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    now = review.decided_at or review.updated_at
    customer = await _locked(session, review)
    if approve:
        customer.status, customer.archived_at = RecordStatus.approved, None
        customer.next_followup_on = now.date()  # back in the pipeline: contact them now
        customer.last_checked_at = now
        customer.version += 1
        customer.updated_at = now
        session.add(customer)
    await _line(session, review, actor, DONE[ReviewKind.reactivate] if approve else "reject", now)


async def _apply_destroy(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    now = review.decided_at or review.updated_at
    customer = await _locked(session, review)
    if not approve:
        await _line(session, review, actor, "reject", now)
        return
    assert customer.id is not None
    wiped = await erasure.erase_customer(session, keyring, customer_id=customer.id, now=now)
    # review cards sent earlier name the customer: deleted through the outbox on commit
    # (imported here: storage.destruction needs storage.outbox, which imports storage.reviews)
    from storage.destruction import take_back_notices

    notices = await take_back_notices(
        session, customer_id=customer.id, keep_review_id=review.id, now=now
    )
    await _line(session, review, actor, DONE[ReviewKind.destroy], now)
    await audit.record(
        session,
        action="customer.destroyed",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={
            "review_id": review.id,
            "requested_by": review.submitted_by,
            **(wiped.detail() if wiped else {}),
            **({"notices": notices} if notices else {}),
        },
    )


APPLY = {
    ReviewKind.archive: _apply_archive,
    ReviewKind.reactivate: _apply_reactivate,
    ReviewKind.destroy: _apply_destroy,
}
