"""审核: the only module that decides reviews, and the rules about who may see and decide them.

A decision is taken once. The review row leaves `pending` through one conditional UPDATE
(`... WHERE id = :id AND status = 'pending'`): of two managers pressing at the same moment, a
double tap, or a press on an old card, exactly one changes the row; the others find it decided
and are told by whom and when. On SQLite the engine's BEGIN IMMEDIATE queues the writers; on
PostgreSQL the second UPDATE waits on the row lock, then matches nothing.

A refused decision leaves nothing written (its writes sit in a savepoint), so a caller may catch
the refusal and still commit, e.g. to audit it in the same transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import (
    audit,
    changes,
    complaints,
    customers,
    life_cycle,
    permissions,
    removals,
    validation,
    vault,
)
from storage import fields as catalogue
from storage.crypto import Keyring
from storage.customers import SEALED_FIELDS, Duplicate, sealed_fields, visible_customer
from storage.errors import NotFound, Refused
from storage.models import (
    ChangeRecord,
    Complaint,
    ComplaintStatus,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewNotice,
    ReviewStatus,
    Staff,
    Team,
)
from storage.permissions import can_view_customer, team_deciders_may_view
from storage.types import utcnow

REASON_MAX = 500
QUEUE_PAGE_SIZE = 5
COMPLAINT_TEXT_LIMIT = 300

# What a card shows of a new customer: the short notice, and the full card behind "Open"; of a
# complaint, its parts (storage.fields)
KEY_FIELDS = catalogue.review_key_fields()
FULL_FIELDS = catalogue.fields_at(catalogue.Record.customer, catalogue.Place.review_full)
COMPLAINT_FIELDS = catalogue.columns_at(catalogue.Record.complaint, catalogue.Place.notes)
# The usual reasons to send a submission back, offered as one-tap buttons beside free text
# (labels `review_ux.reason.<code>`); the decider's words are what is stored
_CUSTOMER_REASONS = ("incomplete", "duplicate", "wrong_class", "no_consent", "wrong_contact")
QUICK_REASONS: dict[str, tuple[str, ...]] = {
    ReviewKind.customer_new: _CUSTOMER_REASONS,
    ReviewKind.customer_change: ("incomplete", "wrong_class", "no_consent", "wrong_contact"),
    ReviewKind.complaint_resolution: ("not_resolved", "no_feedback", "incomplete"),
    ReviewKind.archive: ("reason_unclear", "still_active"),
    ReviewKind.reactivate: ("reason_unclear", "incomplete"),
    ReviewKind.destroy: ("reason_unclear", "still_active"),
    ReviewKind.complaint_removal: ("reason_unclear",),
}
# Refusals worth a line in the audit log: someone tried what they may not do.
AUDITED_REFUSALS = frozenset({"not_allowed", "not_found", "own_submission"})


# ---------------------------------------------------------------------------------------------
# what handlers get back


@dataclass(frozen=True)
class Person:
    """Someone to tell: a chat to write to, in their language and time zone."""

    staff_id: int
    telegram_id: int
    name: str
    language: str | None
    timezone: str | None


@dataclass(frozen=True)
class Line:
    """One field of a card, display-ready: sensitive values already masked."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ReviewView:
    """Everything a card shows of a review; no sensitive value in clear."""

    id: int
    kind: str
    status: str
    team_id: int | None
    team_name: str | None
    customer_id: int | None
    customer_no: str | None
    customer_name: str | None
    complaint_id: int | None
    complaint_no: str | None
    submitted_by: int
    submitter_name: str
    submitted_at: datetime
    decider_name: str | None
    decided_at: datetime | None
    reason: str | None
    lines: tuple[Line, ...] = ()
    request_reason: str | None = None  # why an archive, reactivation or destruction is asked
    duplicates: tuple[Duplicate, ...] = ()  # as this viewer may learn of them
    viewer_may_decide: bool = False  # False for a system view (notices) and the submitter
    viewer_is_submitter: bool = False
    # a new customer or a change that leaves it without recorded consent (PIPL, SPEC 2)
    consent_missing: bool = False

    @property
    def pending(self) -> bool:
        return self.status == ReviewStatus.pending


@dataclass(frozen=True)
class Decision:
    """A decision that was taken, and who must hear of it."""

    review_id: int
    kind: str
    approved: bool
    customer_id: int | None
    complaint_id: int | None
    tell: tuple[Person, ...]


@dataclass(frozen=True)
class Route:
    """Where the notice of a review goes: a manager group chat, else these people."""

    group_chat_id: int | None
    people: tuple[Person, ...]


@dataclass(frozen=True)
class NoticeCopy:
    """One sent copy of a card, with the language and time zone of the chat it is in."""

    chat_id: int
    message_id: int
    language: str | None
    timezone: str | None
    private: bool = True  # a staff member's own chat; else a group, which sees no details
    full: bool = False  # the full card (Open), not the short notice
    staff_id: int | None = None  # whose private chat it is in


@dataclass(frozen=True)
class QueueItem:
    review_id: int
    kind: str
    subject_no: str | None
    subject_name: str | None
    submitter_name: str
    submitted_at: datetime
    own: bool
    team_name: str | None = None


@dataclass(frozen=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int
    page: int
    pages: int
    several_teams: bool = False  # a manager of several teams: each line names its team


class AlreadyDecided(Refused):
    """The review was decided before this press; says by whom and when."""

    def __init__(self, review: Review, decider_name: str | None) -> None:
        super().__init__(
            "already_decided",
            status=review.status,
            by=decider_name or "",
            at=review.decided_at,
        )
        self.status = review.status
        self.decider_name = decider_name or ""
        self.decided_at = review.decided_at


# ---------------------------------------------------------------------------------------------
# who may


def may_decide(actor: Staff, review: Review) -> bool:
    """Managers decide their team's submissions, admins everyone's (SPEC section 4)."""
    return permissions.decides_for_team(actor, review.team_id)


def may_view(actor: Staff, review: Review) -> bool:
    return may_decide(actor, review) or (actor.active and review.submitted_by == actor.id)


def _person(staff: Staff) -> Person:
    return Person(
        staff_id=staff.id or 0,
        telegram_id=staff.telegram_id,
        name=staff.display_name,
        language=staff.language,
        timezone=staff.timezone,
    )


async def _name(session: AsyncSession, staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    staff = await session.get(Staff, staff_id)
    return staff.display_name if staff else None


# ---------------------------------------------------------------------------------------------
# cards


def mask(field_name: str, value: Any) -> Any:
    """A sensitive value as lists and cards show it: `138****5678`, `**** 2233`, `杭*****`."""
    return catalogue.mask(field_name, value)


def _shown(field_name: str, value: Any) -> Any:
    """A value as a card shows it: masked when sensitive, dates as ISO text."""
    if field_name in SEALED_FIELDS:
        return mask(field_name, value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return None if value in ("", []) else value


async def _customer_lines(
    session: AsyncSession, keyring: Keyring, customer: Customer, *, full: bool
) -> tuple[Line, ...]:
    sealed = await sealed_fields(session, keyring, customer)
    lines = []
    for name in FULL_FIELDS if full else KEY_FIELDS:
        value = sealed.get(name) if name in SEALED_FIELDS else getattr(customer, name, None)
        shown = _shown(name, value)
        if shown is not None:
            lines.append(Line(name, None, shown))
    return tuple(lines)


async def proposed_changes(
    session: AsyncSession, keyring: Keyring, review: Review
) -> dict[str, list[Any]]:
    """The field-by-field difference of a pending change, in clear ({field: [old, new]})."""
    if review.changes_sealed is None or review.customer_id is None or review.id is None:
        return {}
    key = await vault.data_key(session, keyring, review.customer_id)
    return vault.unseal(key, review.changes_sealed, table="reviews", row_id=review.id) or {}


async def _change_lines(
    session: AsyncSession, keyring: Keyring, review: Review
) -> tuple[Line, ...]:
    proposed = await proposed_changes(session, keyring, review)
    return tuple(
        Line(name, _shown(name, pair[0]), _shown(name, pair[1]))
        for name, pair in proposed.items()
        if isinstance(pair, list | tuple) and len(pair) == 2
    )


def _complaint_lines(complaint: Complaint) -> tuple[Line, ...]:
    lines = []
    for name in COMPLAINT_FIELDS:
        value = getattr(complaint, name, None)
        if value in (None, ""):
            continue
        text = str(value)
        if len(text) > COMPLAINT_TEXT_LIMIT:
            text = text[: COMPLAINT_TEXT_LIMIT - 1] + "…"
        lines.append(Line(name, None, text))
    return tuple(lines)


async def _duplicates(
    session: AsyncSession, review: Review, viewer: Staff | None
) -> tuple[Duplicate, ...]:
    """The duplicates found when the review was filed, as the viewer may learn of them; a
    notice (no viewer) shows what every decider of the team may see: the team's customers."""
    found = customers.decode_matches(review.duplicates)
    if viewer is None:
        described = await customers.describe(
            session,
            found,
            may_see=lambda c: team_deciders_may_view(review.team_id, c),
            team_id=review.team_id,
        )
    else:
        described = await customers.describe(
            session, found, may_see=lambda c: can_view_customer(viewer, c), team_id=viewer.team_id
        )
    return tuple(d for _match, d in described)


async def _view(
    session: AsyncSession,
    keyring: Keyring,
    review: Review,
    *,
    full: bool,
    viewer: Staff | None,
) -> ReviewView:
    assert review.id is not None
    customer = await session.get(Customer, review.customer_id) if review.customer_id else None
    complaint = await session.get(Complaint, review.complaint_id) if review.complaint_id else None
    team = await session.get(Team, review.team_id) if review.team_id else None
    lines: tuple[Line, ...] = ()
    live = customer is not None and customer.status != RecordStatus.destroyed
    if review.kind == ReviewKind.customer_change and live:
        lines = await _change_lines(session, keyring, review)
    elif review.kind == ReviewKind.complaint_resolution and complaint is not None:
        lines = _complaint_lines(complaint)
    elif review.kind == ReviewKind.complaint_removal:  # what would go; nothing once gone
        lines = _complaint_lines(complaint) if complaint is not None and live else ()
    elif customer is not None and live:
        lines = await _customer_lines(session, keyring, customer, full=full)
    own = viewer is not None and viewer.id == review.submitted_by
    duplicates = await _duplicates(session, review, viewer) if live else ()
    return ReviewView(
        id=review.id,
        kind=review.kind,
        status=review.status,
        team_id=review.team_id,
        team_name=team.name if team else None,
        customer_id=review.customer_id,
        customer_no=customer.customer_no if customer else None,
        customer_name=customer.name if customer and live else None,
        complaint_id=review.complaint_id,
        complaint_no=(
            complaint.complaint_no
            if complaint
            else await removals.removed_number(session, keyring, review)
        ),
        submitted_by=review.submitted_by,
        submitter_name=await _name(session, review.submitted_by) or "",
        submitted_at=review.submitted_at,
        decider_name=await _name(session, review.decided_by),
        decided_at=review.decided_at,
        reason=review.reason,
        lines=lines,
        request_reason=review.request_reason if live else None,
        duplicates=duplicates,
        viewer_may_decide=viewer is not None and may_decide(viewer, review) and not own,
        viewer_is_submitter=own,
        consent_missing=live and _consent_missing(review, customer, lines),
    )


def _consent_missing(review: Review, customer: Customer | None, lines: tuple[Line, ...]) -> bool:
    """Whether a new customer, or one as a change would leave it, has no consent recorded."""
    if customer is None or review.kind not in (ReviewKind.customer_new, ReviewKind.customer_change):
        return False
    changed = [line.after for line in lines if line.field == "consent_given"]
    given = changed[-1] if review.kind == ReviewKind.customer_change and changed else None
    return not (customer.consent_given if given is None else bool(given))


async def view(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, review_id: int, full: bool = True
) -> ReviewView | None:
    """The card of a review for someone who may see it; otherwise None, and it is audited."""
    review = await session.get(Review, review_id)
    if review is not None and may_view(actor, review):
        return await _view(session, keyring, review, full=full, viewer=actor)
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review_id,
        detail={"purpose": "review_open", "exists": review is not None},
    )
    return None


async def notice_view(
    session: AsyncSession, *, keyring: Keyring, review_id: int, full: bool = False
) -> ReviewView | None:
    """The card as the notices show it (to managers and group chats); None if no such review."""
    review = await session.get(Review, review_id)
    if review is None:
        return None
    return await _view(session, keyring, review, full=full, viewer=None)


# ---------------------------------------------------------------------------------------------
# where notices go


async def route(session: AsyncSession, *, review_id: int, use_group: bool = True) -> Route:
    """The team's manager group chat if it has one; else its active managers; else the admins.

    The submitter is never asked to decide their own submission, so a manager who submitted is
    left out, and if that leaves nobody the admins are asked. `use_group=False` names the people
    even when there is a group chat (it could not be reached).
    """
    review = await session.get(Review, review_id)
    if review is None:
        return Route(None, ())
    team = await session.get(Team, review.team_id) if review.team_id else None
    if (
        use_group
        and team is not None
        and team.manager_chat_id is not None
        and team.manager_chat_lost_at is None  # the bot cannot post there (my_chat_member)
    ):
        return Route(team.manager_chat_id, ())
    deciders: list[Staff] = []
    if review.team_id is not None:
        deciders = list(
            (
                await session.exec(
                    select(Staff)
                    .where(
                        *permissions.managers_of(review.team_id), Staff.id != review.submitted_by
                    )
                    .order_by(col(Staff.id))
                )
            ).all()
        )
    if not deciders:
        deciders = list(
            (
                await session.exec(
                    select(Staff)
                    .where(*permissions.admins(), Staff.id != review.submitted_by)
                    .order_by(col(Staff.id))
                )
            ).all()
        )
    return Route(None, tuple(_person(s) for s in deciders))


async def record_notice(
    session: AsyncSession, *, review_id: int, chat_id: int, message_id: int, full: bool = False
) -> None:
    """Remember a sent card (`full`: one a decider opened), so the decision can edit it."""
    session.add(
        ReviewNotice(review_id=review_id, chat_id=chat_id, message_id=message_id, full=full)
    )
    await session.flush()


async def notice_copies(session: AsyncSession, *, review_id: int) -> list[NoticeCopy]:
    """Every sent card of a review, with the reader's language where the chat is a person's."""
    rows = await session.exec(
        select(ReviewNotice, Staff)
        .join(Staff, col(Staff.telegram_id) == ReviewNotice.chat_id, isouter=True)
        .where(ReviewNotice.review_id == review_id)
        .order_by(col(ReviewNotice.id))
    )
    return [
        NoticeCopy(
            chat_id=notice.chat_id,
            message_id=notice.message_id,
            language=staff.language if staff else None,
            timezone=staff.timezone if staff else None,
            private=staff is not None,
            full=notice.full,
            staff_id=staff.id if staff else None,
        )
        for notice, staff in rows.all()
    ]


# ---------------------------------------------------------------------------------------------
# deciding


async def _decidable(session: AsyncSession, *, actor: Staff, review_id: int) -> Review:
    """The review, if the actor may decide it now; raises the reason otherwise (no writes)."""
    review = await session.get(Review, review_id)
    if review is None:
        raise NotFound()
    if not may_decide(actor, review):
        raise Refused("not_allowed")
    if review.submitted_by == actor.id:
        raise Refused("own_submission")
    if review.status != ReviewStatus.pending:
        raise AlreadyDecided(review, await _name(session, review.decided_by))
    return review


async def check_decidable(session: AsyncSession, *, actor: Staff, review_id: int) -> ReviewView:
    """Before asking for a reason: may the actor decide this review now? Raises why not."""
    review = await _decidable(session, actor=actor, review_id=review_id)
    await _subject_ready(session, review)
    assert review.id is not None
    customer = await session.get(Customer, review.customer_id) if review.customer_id else None
    complaint = await session.get(Complaint, review.complaint_id) if review.complaint_id else None
    return ReviewView(
        id=review.id,
        kind=review.kind,
        status=review.status,
        team_id=review.team_id,
        team_name=None,
        customer_id=review.customer_id,
        customer_no=customer.customer_no if customer else None,
        customer_name=customer.name if customer else None,
        complaint_id=review.complaint_id,
        complaint_no=complaint.complaint_no if complaint else None,
        submitted_by=review.submitted_by,
        submitter_name=await _name(session, review.submitted_by) or "",
        submitted_at=review.submitted_at,
        decider_name=None,
        decided_at=None,
        reason=None,
        viewer_may_decide=True,
    )


def _reason(approve: bool, reason: str | None) -> str | None:
    if approve:
        return None
    try:
        return validation.text(reason or "", max_len=REASON_MAX)
    except validation.Invalid as error:
        raise Refused(
            "reason_required" if error.code == "empty" else "reason_too_long", limit=REASON_MAX
        ) from None


async def _subject_ready(session: AsyncSession, review: Review) -> None:
    """The record behind the review must still be in the state the review was made for."""
    customer = await session.get(Customer, review.customer_id) if review.customer_id else None
    if review.kind == ReviewKind.customer_new:
        ready = customer is not None and customer.status == RecordStatus.pending
    elif review.kind == ReviewKind.customer_change:
        ready = customer is not None and customer.status == RecordStatus.approved
    elif review.kind == ReviewKind.complaint_resolution:
        complaint = (
            await session.get(Complaint, review.complaint_id) if review.complaint_id else None
        )
        ready = complaint is not None and complaint.status == ComplaintStatus.resolved
    elif review.kind in life_cycle.KINDS:  # archive, reactivate, destroy
        ready = life_cycle.ready(review, customer)
    elif review.kind == ReviewKind.complaint_removal:
        complaint = (
            await session.get(Complaint, review.complaint_id) if review.complaint_id else None
        )
        ready = removals.ready(complaint, customer)
    else:
        ready = False
    if not ready:
        # the record moving on is often the other decision committing between our reads
        await session.refresh(review)
        if review.status != ReviewStatus.pending:
            raise AlreadyDecided(review, await _name(session, review.decided_by))
        raise Refused("subject_changed")


async def _history(
    session: AsyncSession,
    keyring: Keyring,
    *,
    entity: str,
    entity_id: int,
    customer_id: int,
    action: str,
    actor: Staff,
    review_id: int,
    diff: dict[str, list[Any]] | None,
) -> None:
    key = await vault.data_key(session, keyring, customer_id) if diff else b""
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity=entity,
            entity_id=entity_id,
            customer_id=customer_id,
            action=action,
            changed_by=actor.id,
            changed_at=utcnow(),
            review_id=review_id,
        ),
        diff or None,
    )


async def _locked_customer(session: AsyncSession, review: Review) -> Customer:
    """The review's customer, re-read under a row lock: a change approved a moment ago by
    someone else is waited for and seen, not overwritten."""
    return (
        await session.exec(
            select(Customer)
            .where(Customer.id == review.customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()


async def _apply_customer_new(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    customer = await _locked_customer(session, review)
    assert customer is not None and customer.id is not None and review.id is not None
    now = utcnow()
    new_status = RecordStatus.approved if approve else RecordStatus.rejected
    old_status, customer.status = customer.status, new_status
    customer.updated_at, customer.version = now, customer.version + 1
    if approve:
        customer.approved_at = customer.last_checked_at = now
    session.add(customer)
    await _history(
        session,
        keyring,
        entity="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        action="approve" if approve else "reject",
        actor=actor,
        review_id=review.id,
        diff={"status": [old_status, new_status]},
    )


async def _apply_customer_change(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    customer = await _locked_customer(session, review)
    assert customer is not None and customer.id is not None and review.id is not None
    if approve:  # the edit feature owns how values are written (sealing, indexes, history)
        proposed = await proposed_changes(session, keyring, review)
        await changes.apply_change(
            session,
            keyring=keyring,
            customer=customer,
            changes=proposed,
            actor_id=actor.id,
            review_id=review.id,
        )
    await _history(
        session,
        keyring,
        entity="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        action="approve" if approve else "reject",
        actor=actor,
        review_id=review.id,
        diff=None,
    )


async def _apply_complaint(
    session: AsyncSession, keyring: Keyring, review: Review, actor: Staff, approve: bool
) -> None:
    """Close the complaint (its feedback stands as recorded), or reopen it for more work."""
    assert review.complaint_id is not None and review.id is not None
    await complaints.decide_resolution(
        session,
        keyring=keyring,
        actor=actor,
        complaint_id=review.complaint_id,
        review_id=review.id,
        approved=approve,
        now=utcnow(),
    )


_APPLY = {
    ReviewKind.customer_new: _apply_customer_new,
    ReviewKind.customer_change: _apply_customer_change,
    ReviewKind.complaint_resolution: _apply_complaint,
    **life_cycle.APPLY,
    **removals.APPLY,
}


async def _told(session: AsyncSession, review: Review) -> tuple[Person, ...]:
    """The submitter, and for a complaint its handler too, if they are still with us."""
    ids = [review.submitted_by]
    if review.complaint_id is not None:
        complaint = await session.get(Complaint, review.complaint_id)
        if complaint is not None and complaint.handler_id is not None:
            ids.append(complaint.handler_id)
    people = []
    for staff_id in dict.fromkeys(ids):
        staff = await session.get(Staff, staff_id)
        if staff is not None and staff.active:
            people.append(_person(staff))
    return tuple(people)


async def decide(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    review_id: int,
    approve: bool,
    reason: str | None = None,
) -> Decision:
    """Approve or reject a pending review, exactly once, and apply what that means.

    Raises Refused, leaving nothing written: not_found, not_allowed, own_submission,
    already_decided (AlreadyDecided: by whom, when), reason_required, reason_too_long,
    subject_changed, or what applying it refuses (e.g. changed_meanwhile).
    """
    review = await _decidable(session, actor=actor, review_id=review_id)
    reason = _reason(approve, reason)
    await _subject_ready(session, review)
    now = utcnow()
    status = ReviewStatus.approved if approve else ReviewStatus.rejected
    try:
        await _take(session, keyring, review, actor, approve, status, reason, now)
    except _Lost:
        await session.refresh(review)
        raise AlreadyDecided(review, await _name(session, review.decided_by)) from None
    await session.flush()
    return Decision(
        review_id=review_id,
        kind=review.kind,
        approved=approve,
        customer_id=review.customer_id,
        complaint_id=review.complaint_id,
        tell=await _told(session, review),
    )


class _Lost(Exception):
    """The conditional UPDATE matched nothing: another decision came first."""


async def _take(
    session: AsyncSession,
    keyring: Keyring,
    review: Review,
    actor: Staff,
    approve: bool,
    status: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Take the decision and apply it, all or nothing.

    A savepoint: whatever refuses after the first write (the record moved on meanwhile) takes
    every write of this decision with it, so a caller that catches the refusal may still commit.
    """
    async with session.begin_nested():
        taken = await session.exec(
            update(Review)
            .where(col(Review.id) == review.id, col(Review.status) == ReviewStatus.pending)
            .values(
                status=status,
                decided_by=actor.id,
                decided_at=now,
                reason=reason,
                version=Review.version + 1,
                updated_at=now,
            )
        )
        if taken.rowcount != 1:  # someone decided between our read and our write
            raise _Lost()
        await session.refresh(review)
        await _APPLY[ReviewKind(review.kind)](session, keyring, review, actor, approve)
        await audit.record(
            session,
            action="review.approve" if approve else "review.reject",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="review",
            entity_id=review.id,
            detail={
                "kind": review.kind,
                "customer_id": review.customer_id,
                "complaint_id": review.complaint_id,
            },
        )


async def record_refusal(
    session: AsyncSession,
    *,
    actor: Staff,
    code: str,
    purpose: str,
    entity: str = "review",
    entity_id: int | None = None,
) -> None:
    """Audit a refused attempt (a forged or foreign button, one's own submission, /setgroup)."""
    await audit.record(
        session,
        action="access.denied" if code in ("not_allowed", "not_found") else "review.refused",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity=entity,
        entity_id=entity_id,
        detail={"purpose": purpose, "reason": code},
    )


# ---------------------------------------------------------------------------------------------
# submitting again


async def resubmit(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, customer_id: int
) -> Review | None:
    """Send a rejected customer back for review: pending again, with a new review.

    None when the actor may not see the customer (audited); Refused("not_owner") when they
    may see it but it is not theirs to send back; Refused("not_rejected") when it is not (or no
    longer) rejected, e.g. a double tap that already resubmitted it.
    """
    customer = await visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="resubmit"
    )
    if customer is None:
        return None
    if not permissions.can_resubmit(actor, customer):
        raise Refused("not_owner")
    now = utcnow()
    moved = await session.exec(
        update(Customer)
        .where(col(Customer.id) == customer_id, col(Customer.status) == RecordStatus.rejected)
        .values(
            status=RecordStatus.pending,
            submitted_at=now,
            version=Customer.version + 1,
            updated_at=now,
        )
    )
    if moved.rowcount != 1:
        raise Refused("not_rejected")
    await session.refresh(customer)
    values = {**await sealed_fields(session, keyring, customer), "name": customer.name}
    review = Review(
        kind=ReviewKind.customer_new,
        customer_id=customer_id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        duplicates=await customers.submission_matches(
            session, keyring=keyring, customer=customer, values=values
        ),
    )
    session.add(review)
    await session.flush()
    assert review.id is not None
    await _history(
        session,
        keyring,
        entity="customer",
        entity_id=customer_id,
        customer_id=customer_id,
        action="submit",
        actor=actor,
        review_id=review.id,
        diff={"status": [RecordStatus.rejected, RecordStatus.pending]},
    )
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={"kind": review.kind, "customer_id": customer_id, "resubmitted": True},
    )
    return review


async def pending_review_of(
    session: AsyncSession, *, customer_id: int, kind: str = ReviewKind.customer_new
) -> Review | None:
    """The newest pending review of a customer (e.g. the one create_customer just made)."""
    return (
        await session.exec(
            select(Review)
            .where(
                Review.customer_id == customer_id,
                Review.kind == kind,
                Review.status == ReviewStatus.pending,
            )
            .order_by(col(Review.id).desc())
            .limit(1)
        )
    ).first()


# ---------------------------------------------------------------------------------------------
# the queue


async def pending_queue(
    session: AsyncSession, *, actor: Staff, page: int = 0, page_size: int = QUEUE_PAGE_SIZE
) -> QueuePage:
    """What awaits a decision: the manager's teams (admins: everything), oldest first."""
    if not permissions.is_decider(actor):
        raise Refused("not_allowed")
    scope = [Review.status == ReviewStatus.pending]
    teams: list[int] = []
    if not permissions.is_admin(actor):
        teams = sorted(permissions.teams_of(actor))  # every team a manager leads
        if not teams:
            raise Refused("team_required")
        scope.append(col(Review.team_id).in_(teams))
    total = (await session.exec(select(func.count()).select_from(Review).where(*scope))).one()
    pages = max(1, math.ceil(total / page_size))
    page = min(max(page, 0), pages - 1)
    rows = await session.exec(
        select(
            Review, Staff.display_name, Customer.customer_no, Customer.name, Complaint, Team.name
        )
        .join(Staff, col(Staff.id) == Review.submitted_by)
        .join(Customer, col(Customer.id) == Review.customer_id, isouter=True)
        .join(Complaint, col(Complaint.id) == Review.complaint_id, isouter=True)
        .join(Team, col(Team.id) == Review.team_id, isouter=True)
        .where(*scope)
        .order_by(col(Review.submitted_at), col(Review.id))
        .offset(page * page_size)
        .limit(page_size)
    )
    items = []
    for review, submitter, number, name, complaint, team_name in rows.all():
        if complaint is not None:
            number = complaint.complaint_no
        items.append(
            QueueItem(
                review_id=review.id or 0,
                kind=review.kind,
                subject_no=number,
                subject_name=name,
                submitter_name=submitter,
                submitted_at=review.submitted_at,
                own=review.submitted_by == actor.id,
                team_name=team_name,
            )
        )
    return QueuePage(tuple(items), total, page, pages, several_teams=len(teams) > 1)
