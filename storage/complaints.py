"""Complaints (投诉): the only module that writes them, and who may see and move them.

Life of a complaint: open → in_progress → resolved (awaiting approval) → closed, or back to
reopened when the resolution is rejected. The handler (by default the customer's owner), a
manager of the customer's team or an admin moves it on; entering the resolution submits it for
review (a `complaint_resolution` Review). Numbers (TS-2026-000001) come from
`storage.numbers`, so they are unique and never reused, also under concurrent creation.

Refusals for lack of permission are audited (`access.denied`) before `Refused` is raised, and
nothing else has been written by then: a caller that catches the refusal inside its unit of work
keeps the audit entry. State refusals (`complaint_state`) are not audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, numbers, permissions, vault
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    ChangeRecord,
    Complaint,
    ComplaintStatus,
    ComplaintType,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Severity,
    Staff,
)
from storage.paging import customer_window
from storage.permissions import can_view_customer
from storage.types import jsonable
from storage.visits import loggable_customer

NUMBER_PREFIX = "TS"
CHANNELS = ("phone", "visit", "online", "letter", "other")
MAX_DESCRIPTION = 2000
MAX_RESOLUTION = 2000
MAX_FEEDBACK = 1000
WORKABLE = (ComplaintStatus.open, ComplaintStatus.in_progress, ComplaintStatus.reopened)
# which actions each status allows; the buttons offered and the checks below both follow it
ACTIONS_BY_STATUS: dict[str, tuple[str, ...]] = {
    ComplaintStatus.open: ("take", "resolve", "assign"),
    ComplaintStatus.reopened: ("take", "resolve", "assign"),
    ComplaintStatus.in_progress: ("resolve", "assign"),
    ComplaintStatus.resolved: (),
    ComplaintStatus.closed: (),
}


@dataclass(frozen=True)
class ComplaintView:
    """A complaint with what is shown beside it."""

    complaint: Complaint
    customer: Customer
    handler: Staff | None
    received_by: Staff | None


@dataclass(frozen=True)
class ComplaintPage:
    customer: Customer
    complaints: list[Complaint]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class Resolution:
    """The result of entering a resolution: the complaint and the review it now waits for."""

    complaint: Complaint
    review: Review


# ---------------------------------------------------------------------------------------------
# who may


def may_see(actor: Staff, complaint: Complaint, customer: Customer) -> bool:
    """Whoever may see the customer, and the complaint's handler (who may not otherwise)."""
    if not actor.active:
        return False
    return can_view_customer(actor, customer) or complaint.handler_id == actor.id


def may_work(actor: Staff, complaint: Complaint, customer: Customer) -> bool:
    """The handler, a manager of the customer's team, or an admin."""
    return permissions.can_handle_complaint(
        actor, handler_id=complaint.handler_id, customer=customer
    )


def may_assign(actor: Staff, customer: Customer) -> bool:
    """Choosing a handler other than the owner is for managers of the team and admins."""
    return permissions.can_reassign(actor, customer.team_id)


def allowed_actions(actor: Staff, complaint: Complaint, customer: Customer) -> list[str]:
    """The actions (take / resolve / assign) this actor may take on the complaint now."""
    actions = []
    for action in ACTIONS_BY_STATUS.get(complaint.status, ()):
        if action == "assign" and not may_assign(actor, customer):
            continue
        if action != "assign" and not may_work(actor, complaint, customer):
            continue
        actions.append(action)
    return actions


def due_at(received_at: datetime, severity: str, due_hours: dict[str, int]) -> datetime:
    """When a complaint must be resolved: its time of receipt plus its severity's hours."""
    return received_at + timedelta(hours=due_hours[severity])


async def _deny(
    session: AsyncSession, actor: Staff, complaint_id: int, purpose: str, exists: bool
) -> None:
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="complaint",
        entity_id=complaint_id,
        detail={"purpose": purpose, "exists": exists},
    )


async def _view(session: AsyncSession, complaint: Complaint, customer: Customer) -> ComplaintView:
    handler = await session.get(Staff, complaint.handler_id) if complaint.handler_id else None
    received_by = await session.get(Staff, complaint.received_by)
    return ComplaintView(complaint, customer, handler, received_by)


async def visible_complaint(
    session: AsyncSession, *, actor: Staff, complaint_id: int, purpose: str
) -> ComplaintView | None:
    """The complaint if the actor may see it; otherwise None, and the attempt is audited."""
    complaint = await session.get(Complaint, complaint_id)
    customer = await session.get(Customer, complaint.customer_id) if complaint else None
    if (
        complaint is None
        or customer is None
        or customer.status == RecordStatus.destroyed
        or not may_see(actor, complaint, customer)
    ):
        await _deny(session, actor, complaint_id, purpose, complaint is not None)
        return None
    return await _view(session, complaint, customer)


async def _locked(
    session: AsyncSession, actor: Staff, complaint_id: int, purpose: str
) -> tuple[Complaint, Customer]:
    """The complaint, row-locked for a change, if the actor may see it (else audited refusal)."""
    found = await visible_complaint(
        session, actor=actor, complaint_id=complaint_id, purpose=purpose
    )
    if found is None:
        raise NotFound()
    complaint = found.complaint
    await session.refresh(complaint, with_for_update=True)
    return complaint, found.customer


async def _require(
    session: AsyncSession,
    actor: Staff,
    complaint: Complaint,
    customer: Customer,
    action: str,
) -> None:
    """Refuse (audited) an actor who may not take `action`, and a state that does not allow it."""
    allowed = (
        may_assign(actor, customer) if action == "assign" else may_work(actor, complaint, customer)
    )
    if not allowed:
        await _deny(session, actor, complaint.id or 0, f"complaint.{action}", True)
        raise Refused("not_allowed")
    if action not in ACTIONS_BY_STATUS.get(complaint.status, ()):
        raise Refused("complaint_state", status=complaint.status)
    if customer.status == RecordStatus.archived:  # read-only, its complaints too
        raise Refused("archived_work")


async def complaint_for_action(
    session: AsyncSession, *, actor: Staff, complaint_id: int, action: str
) -> ComplaintView:
    """The complaint if the actor may take `action` on it now; refusals as in `_require`."""
    found = await visible_complaint(
        session, actor=actor, complaint_id=complaint_id, purpose=f"complaint.{action}"
    )
    if found is None:
        raise NotFound()
    await _require(session, actor, found.complaint, found.customer, action)
    return found


async def _history(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint: Complaint,
    action: str,
    diff: dict[str, list[Any]],
    now: datetime,
    review_id: int | None = None,
) -> None:
    """One 变更记录 entry, sealed with the customer's data key, and its audit entry."""
    key = await vault.data_key(session, keyring, complaint.customer_id)
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity="complaint",
            entity_id=complaint.id or 0,
            customer_id=complaint.customer_id,
            action=action,
            changed_by=actor.id,
            changed_at=now,
            review_id=review_id,
        ),
        {f: [jsonable(a), jsonable(b)] for f, (a, b) in diff.items()},
    )
    await session.flush()
    await audit.record(
        session,
        action=f"complaint.{action}",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="complaint",
        entity_id=complaint.id,
        detail={
            "complaint_no": complaint.complaint_no,
            "customer_id": complaint.customer_id,
            "status": complaint.status,
            "fields": sorted(diff),
            **({"review_id": review_id} if review_id else {}),
        },
    )


async def _change(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint: Complaint,
    action: str,
    changes: dict[str, Any],
    now: datetime,
    review_id: int | None = None,
) -> None:
    """Write new values onto the complaint, bump its version, and keep the difference."""
    diff = {field: [getattr(complaint, field), value] for field, value in changes.items()}
    for field, value in changes.items():
        setattr(complaint, field, value)
    complaint.version += 1
    complaint.updated_at = now
    session.add(complaint)
    await _history(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action=action,
        diff=diff,
        now=now,
        review_id=review_id,
    )


def _text(value: Any, limit: int, *, required: bool) -> str | None:
    text = (str(value) if value is not None else "").strip()
    if not text:
        if required:
            raise Refused("incomplete")
        return None
    if len(text) > limit:
        raise Refused("too_long")
    return text


# ---------------------------------------------------------------------------------------------
# handlers


async def handler_candidates(
    session: AsyncSession, *, actor: Staff, customer_id: int
) -> list[Staff]:
    """Who may handle the customer's complaints: its owner first, then the team's active staff.

    Only a manager of the team (or an admin) gets more than the owner.
    """
    customer = await loggable_customer(
        session, actor=actor, customer_id=customer_id, purpose="complaint.handlers"
    )
    owner = await session.get(Staff, customer.owner_id)
    candidates = [owner] if owner is not None and owner.active else []
    if not may_assign(actor, customer) or customer.team_id is None:
        return candidates
    others = await session.exec(
        select(Staff)
        .where(
            *permissions.handed_to_clauses(customer.team_id),
            Staff.id != customer.owner_id,
        )
        .order_by(col(Staff.display_name), col(Staff.id))
    )
    return candidates + list(others.all())


async def _valid_handler(
    session: AsyncSession, actor: Staff, customer: Customer, handler_id: int | None
) -> Staff:
    """The handler asked for, or the owner; anyone else only if the actor may assign them."""
    wanted = handler_id if handler_id is not None else customer.owner_id
    handler = await session.get(Staff, wanted)
    if handler is None or not handler.active:
        raise Refused("complaint_handler")
    if wanted == customer.owner_id:
        return handler
    if not may_assign(actor, customer):
        raise Refused("not_allowed")
    if not permissions.can_be_handed_to(handler, customer.team_id):
        raise Refused("complaint_handler")
    return handler


# ---------------------------------------------------------------------------------------------
# changes


async def log_complaint(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    values: dict[str, Any],
    now: datetime,
    due_hours: dict[str, int],
) -> Complaint:
    """Register a complaint as `open`, with its number, handler and due time from severity.

    `values`: channel, complaint_type, severity, description, handler_id (None: the owner).
    """
    customer = await loggable_customer(
        session, actor=actor, customer_id=customer_id, purpose="complaint.log"
    )
    channel = values.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise Refused("incomplete")
    complaint_type, severity = values.get("complaint_type"), values.get("severity")
    if complaint_type not in tuple(ComplaintType) or severity not in tuple(Severity):
        raise Refused("incomplete")
    description = _text(values.get("description"), MAX_DESCRIPTION, required=True)
    handler_id = values.get("handler_id")
    handler = await _valid_handler(
        session, actor, customer, int(handler_id) if handler_id not in (None, "") else None
    )
    complaint = Complaint(
        complaint_no=await numbers.next_number(session, NUMBER_PREFIX, now.year),
        customer_id=customer.id or 0,
        received_by=actor.id or 0,
        received_at=now,
        channel=channel,
        type=complaint_type,
        severity=severity,
        description=description or "",
        handler_id=handler.id,
        status=ComplaintStatus.open,
        due_at=due_at(now, severity, due_hours),
        created_at=now,
        updated_at=now,
    )
    session.add(complaint)
    await session.flush()
    diff: dict[str, list[Any]] = {
        "complaint_no": [None, complaint.complaint_no],
        "channel": [None, channel],
        "type": [None, complaint_type],
        "severity": [None, severity],
        "description": [None, description],
        "handler_id": [None, handler.id],
        "status": [None, complaint.status],
        "due_at": [None, complaint.due_at],
    }
    await _history(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action="create",
        diff=diff,
        now=now,
    )
    return complaint


async def start_progress(
    session: AsyncSession, *, keyring: Keyring, actor: Staff, complaint_id: int, now: datetime
) -> Complaint:
    """The handler (or a manager) takes the complaint on: open/reopened → in_progress."""
    complaint, customer = await _locked(session, actor, complaint_id, "complaint.take")
    await _require(session, actor, complaint, customer, "take")
    await _change(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action="in_progress",
        changes={"status": ComplaintStatus.in_progress},
        now=now,
    )
    return complaint


async def resolve(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint_id: int,
    resolution: str,
    feedback: str,
    feedback_at: datetime,
    now: datetime,
) -> Resolution:
    """Record the resolution and the feedback given to the customer; it now awaits approval."""
    complaint, customer = await _locked(session, actor, complaint_id, "complaint.resolve")
    await _require(session, actor, complaint, customer, "resolve")
    resolution_text = _text(resolution, MAX_RESOLUTION, required=True)
    feedback_text = _text(feedback, MAX_FEEDBACK, required=True)
    if feedback_at.tzinfo is None:
        raise ValueError("feedback_at must be timezone-aware")
    review = Review(
        kind=ReviewKind.complaint_resolution,
        status=ReviewStatus.pending,
        customer_id=complaint.customer_id,
        complaint_id=complaint.id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(review)
    await session.flush()
    complaint.approver_id = None  # a new resolution waits for a new decision
    await _change(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action="resolve",
        changes={
            "status": ComplaintStatus.resolved,
            "resolution": resolution_text,
            "feedback": feedback_text,
            "feedback_at": feedback_at,
        },
        now=now,
        review_id=review.id,
    )
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={"kind": review.kind, "complaint_id": complaint.id},
    )
    return Resolution(complaint, review)


async def reassign(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint_id: int,
    handler_id: int,
    now: datetime,
) -> Complaint:
    """A manager of the team (or an admin) hands the complaint to another member of the team."""
    complaint, customer = await _locked(session, actor, complaint_id, "complaint.assign")
    await _require(session, actor, complaint, customer, "assign")
    handler = await _valid_handler(session, actor, customer, handler_id)
    if handler.id == complaint.handler_id:
        return complaint
    await _change(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action="assign",
        changes={"handler_id": handler.id},
        now=now,
    )
    return complaint


async def decide_resolution(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    complaint_id: int,
    review_id: int,
    approved: bool,
    now: datetime,
) -> Complaint:
    """Close the complaint when its resolution is approved, or reopen it when rejected.

    Called by the review module in the transaction that records the decision; that module
    decides who may approve (not the submitter). Here: a manager of the team or an admin, and
    only a complaint that is awaiting approval.
    """
    found = await visible_complaint(
        session, actor=actor, complaint_id=complaint_id, purpose="complaint.decide"
    )
    if found is None:
        raise NotFound()
    complaint, customer = found.complaint, found.customer
    await session.refresh(complaint, with_for_update=True)
    if not permissions.decides_for_team(actor, customer.team_id):
        await _deny(session, actor, complaint_id, "complaint.decide", True)
        raise Refused("not_allowed")
    if complaint.status != ComplaintStatus.resolved:
        raise Refused("complaint_state", status=complaint.status)
    changes: dict[str, Any] = (
        {"status": ComplaintStatus.closed, "approver_id": actor.id, "closed_at": now}
        if approved
        else {"status": ComplaintStatus.reopened}
    )
    await _change(
        session,
        keyring=keyring,
        actor=actor,
        complaint=complaint,
        action="close" if approved else "reopen",
        changes=changes,
        now=now,
        review_id=review_id,
    )
    return complaint


# ---------------------------------------------------------------------------------------------
# lists


async def complaints_of(
    session: AsyncSession, *, actor: Staff, customer_id: int, page: int, page_size: int = 6
) -> ComplaintPage | None:
    """One page of a customer's complaints, unfinished first, newest first within that;
    None (audited) if the actor may not see the customer."""
    window = await customer_window(
        session,
        actor=actor,
        customer_id=customer_id,
        record=Complaint,
        purpose="complaint.list",
        page=page,
        page_size=page_size,
    )
    if window is None:
        return None
    finished = case((col(Complaint.status) == ComplaintStatus.closed, 1), else_=0)
    rows = await session.exec(
        select(Complaint)
        .where(Complaint.customer_id == customer_id)
        .order_by(finished, col(Complaint.received_at).desc(), col(Complaint.id).desc())
        .offset(window.offset)
        .limit(page_size)
    )
    return ComplaintPage(window.customer, list(rows.all()), window.total, window.page, page_size)
