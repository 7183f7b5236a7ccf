"""Visits (拜访记录) and their attachments: the only module that writes them, and who may.

A visit is logged for a customer the actor may log visits for (SPEC section 4: a salesperson
their own customers, a manager the team's, an admin all), checked here on every save, never only
by the picker. Saving one visit touches the customer too (last visit, next follow-up, and the
stage when it changed), with history and audit entries, all in the caller's transaction.

Refusals: a customer the actor may not see is audited (`access.denied`) before `NotFound` is
raised, and nothing else has been written by then, so a caller that catches the refusal inside
its unit of work keeps the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, checkin, customers, dates, validation, vault
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    Attachment,
    ChangeRecord,
    Customer,
    CustomerClass,
    RecordStatus,
    Staff,
    Stage,
    Visit,
    VisitKind,
)
from storage.paging import customer_window
from storage.types import jsonable

ATTACHMENT_KINDS = ("photo", "document", "voice")
MAX_ATTACHMENTS = 20
TEXT_LIMITS = {"purpose": 500, "discussion": 2000, "needs_feedback": 2000, "outcome": 1000}
# a phone's clock may run a little ahead of ours; further ahead is a typing mistake
FUTURE_TOLERANCE = timedelta(minutes=10)
DEFAULT_CYCLE_DAYS = 30


@dataclass(frozen=True)
class VisitCustomer:
    """What a visit flow needs to know about its customer (class for the follow-up default)."""

    id: int
    name: str
    customer_no: str
    customer_class: str
    stage: str | None
    status: str


@dataclass(frozen=True)
class LoggedVisit:
    """A saved visit, its customer as the visit left it, and whether the visit gave the
    customer its place (the confirmation says so): what the flow tells without reading again."""

    visit: Visit
    customer: VisitCustomer
    placed_customer: bool


@dataclass(frozen=True)
class VisitEntry:
    visit: Visit
    salesperson_name: str
    attachments: int


@dataclass(frozen=True)
class VisitPage:
    customer: Customer
    entries: list[VisitEntry]
    total: int
    page: int
    page_size: int


def followup_default(customer_class: str | None, today: date, cycles: dict[str, int]) -> date:
    """Next follow-up when none is given: today plus the customer's class cycle."""
    return today + timedelta(days=cycles.get(customer_class or CustomerClass.C, DEFAULT_CYCLE_DAYS))


async def loggable_customer(
    session: AsyncSession, *, actor: Staff, customer_id: int, purpose: str
) -> Customer:
    """The customer if the actor may log a visit or complaint for it; refusals are audited.

    Logging follows the viewing rule (SPEC section 4); an archived customer is read-only.
    """
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose=purpose
    )
    if customer is None:
        raise NotFound()
    if customer.status == RecordStatus.archived:
        raise Refused("archived")
    return customer


async def visit_customer(
    session: AsyncSession, *, actor: Staff, customer_id: int
) -> VisitCustomer | None:
    """Facts about a customer for the visit flow; None (audited) if the actor may not see it."""
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="visit.start"
    )
    if customer is None or customer.id is None:
        return None
    return _facts(customer)


def _facts(customer: Customer) -> VisitCustomer:
    return VisitCustomer(
        id=customer.id or 0,
        name=customer.name,
        customer_no=customer.customer_no,
        customer_class=customer.customer_class,
        stage=customer.stage,
        status=customer.status,
    )


def _checked_values(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The visit's own fields, checked again here: the flow is not the only possible caller."""
    kind = values.get("kind")
    if kind not in tuple(VisitKind):
        raise Refused("incomplete")
    visited_at = values.get("visited_at") or now
    if isinstance(visited_at, str):
        visited_at = datetime.fromisoformat(visited_at)
    if visited_at.tzinfo is None:
        raise ValueError("visited_at must be timezone-aware")
    if visited_at > now + FUTURE_TOLERANCE:
        raise Refused("visit_time")
    stage_change = values.get("stage_change") or None
    if stage_change is not None and stage_change not in tuple(Stage):
        raise Refused("incomplete")
    checked: dict[str, Any] = {"kind": kind, "visited_at": visited_at, "stage_change": stage_change}
    for field, limit in TEXT_LIMITS.items():
        text = (values.get(field) or "").strip() or None
        if text is not None and len(text) > limit:
            raise Refused("too_long")
        checked[field] = text
    location = values.get("location") or None
    if location is not None:
        latitude, longitude = float(location["latitude"]), float(location["longitude"])
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise Refused("incomplete")
        accuracy = location.get("accuracy")
        checked["location"] = (latitude, longitude, float(accuracy) if accuracy else None)
    else:
        checked["location"] = None
    attachments = list(values.get("attachments") or [])
    if len(attachments) > MAX_ATTACHMENTS:
        raise Refused("too_many")
    for attachment in attachments:
        if attachment.get("kind") not in ATTACHMENT_KINDS or not attachment.get("file_id"):
            raise Refused("incomplete")
    checked["attachments"] = attachments
    followup = values.get("next_followup_on")
    if isinstance(followup, str):
        followup = date.fromisoformat(followup)
    checked["next_followup_on"] = followup
    # the moment the location was shared for a visit logged "now" (storage.checkin)
    checked_in_at = values.get("checked_in_at") if checked["location"] is not None else None
    if isinstance(checked_in_at, str):
        checked_in_at = datetime.fromisoformat(checked_in_at)
    if checked_in_at is not None and (
        checked_in_at.tzinfo is None or checked_in_at > now + FUTURE_TOLERANCE
    ):
        raise Refused("visit_time")
    checked["checked_in_at"] = checked_in_at
    return checked


async def log_visit(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    values: dict[str, Any],
    now: datetime,
    timezone: str,
    followup_cycles: dict[str, int],
    checkin_radius_m: int = checkin.DEFAULT_RADIUS_M,
) -> Visit:
    """`record_visit`'s visit alone."""
    logged = await record_visit(
        session,
        keyring=keyring,
        actor=actor,
        customer_id=customer_id,
        values=values,
        now=now,
        timezone=timezone,
        followup_cycles=followup_cycles,
        checkin_radius_m=checkin_radius_m,
    )
    return logged.visit


async def record_visit(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    values: dict[str, Any],
    now: datetime,
    timezone: str,
    followup_cycles: dict[str, int],
    checkin_radius_m: int = checkin.DEFAULT_RADIUS_M,
) -> LoggedVisit:
    """Save a visit with its attachments and bring the customer's dates (and stage) up to date.

    `values`: kind, visited_at (aware datetime or ISO text; None = now), location
    ({latitude, longitude, accuracy} or None), purpose, discussion, needs_feedback, outcome,
    stage_change (a Stage or None), next_followup_on (date, ISO text or None = the class cycle),
    attachments ([{kind, file_id, unique}]), checked_in_at (aware datetime or ISO text; kept
    only with a location). An on-site visit is checked against the customer's location
    (storage.checkin): farther than `checkin_radius_m` it is saved flagged.
    """
    customer = await loggable_customer(
        session, actor=actor, customer_id=customer_id, purpose="visit.log"
    )
    checked = _checked_values(values, now)
    # take the customer's row for the update: a concurrent edit waits instead of being lost
    # (SQLite's writer holds the whole database from BEGIN: nobody can have changed it)
    if session.get_bind().dialect.name != "sqlite":
        await session.refresh(customer, with_for_update=True)
    assert customer.id is not None
    tz = ZoneInfo(timezone)
    today = now.astimezone(tz).date()
    visit_day = checked["visited_at"].astimezone(tz).date()
    location = checked["location"]
    key = await vault.data_key(session, keyring, customer.id)
    verdict = await checkin.verify_visit(
        session,
        key=key,
        actor=actor,
        customer=customer,
        kind=checked["kind"],
        location=location,
        radius_m=checkin_radius_m,
        now=now,
    )
    visit = Visit(
        customer_id=customer.id,
        salesperson_id=actor.id or 0,
        visited_at=checked["visited_at"],
        kind=checked["kind"],
        latitude=location[0] if location else None,
        longitude=location[1] if location else None,
        accuracy_m=location[2] if location else None,
        purpose=checked["purpose"],
        discussion=checked["discussion"],
        needs_feedback=checked["needs_feedback"],
        outcome=checked["outcome"],
        stage_change=(
            checked["stage_change"] if checked["stage_change"] != customer.stage else None
        ),
        next_followup_on=checked["next_followup_on"]
        or followup_default(customer.customer_class, today, followup_cycles),
        checkin_distance_m=verdict.distance_m,
        checkin_flagged=verdict.flagged,
        checked_in_at=checked["checked_in_at"],
        created_at=now,
        updated_at=now,
    )
    session.add(visit)
    await session.flush()
    assert visit.id is not None
    for attachment in checked["attachments"]:
        session.add(
            Attachment(
                visit_id=visit.id,
                kind=attachment["kind"],
                file_id=str(attachment["file_id"])[:255],
                file_unique_id=(str(attachment.get("unique") or "")[:100] or None),
                created_at=now,
                updated_at=now,
            )
        )

    changes: dict[str, list[Any]] = {}
    if customer.last_visit_on is None or visit_day > customer.last_visit_on:
        changes["last_visit_on"] = [customer.last_visit_on, visit_day]
        customer.last_visit_on = visit_day
    if customer.next_followup_on != visit.next_followup_on:
        changes["next_followup_on"] = [customer.next_followup_on, visit.next_followup_on]
        customer.next_followup_on = visit.next_followup_on
    if visit.stage_change is not None:
        changes["stage"] = [customer.stage, visit.stage_change]
        customer.stage = visit.stage_change
    customer.version += 1
    customer.updated_at = now  # also makes it one of the actor's recent customers
    session.add(customer)

    visit_diff = {
        "kind": [None, visit.kind],
        "visited_at": [None, jsonable(visit.visited_at)],
        "location": [None, [visit.latitude, visit.longitude] if location else None],
        **{f: [None, checked[f]] for f in TEXT_LIMITS if checked[f] is not None},
        "stage_change": [None, visit.stage_change],
        "next_followup_on": [None, jsonable(visit.next_followup_on)],
        "attachments": [None, len(checked["attachments"])],
        **(checkin.checkin_history(visit) if location else {}),
    }
    history = [("visit", visit.id, "create", visit_diff)]
    if changes:
        diff = {f: [jsonable(old), jsonable(new)] for f, (old, new) in changes.items()}
        history.append(("customer", customer.id, "visit", diff))
    for entity, entity_id, action, diff in history:
        await vault.add_change(
            session,
            key,
            ChangeRecord(
                entity=entity,
                entity_id=entity_id,
                customer_id=customer.id,
                action=action,
                changed_by=actor.id,
                changed_at=now,
            ),
            diff,
        )
    await session.flush()
    await audit.record(
        session,
        action="visit.create",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="visit",
        entity_id=visit.id,
        detail={
            "customer_id": customer.id,
            "kind": visit.kind,
            "attachments": len(checked["attachments"]),
            "location": location is not None,
            "flagged": verdict.flagged,
            "placed_customer": verdict.placed,
        },
    )
    if changes:
        await audit.record(
            session,
            action="customer.update",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="customer",
            entity_id=customer.id,
            detail={"fields": sorted(changes), "via": "visit", "visit_id": visit.id},
        )
    return LoggedVisit(visit, _facts(customer), verdict.placed)


async def visits_of(
    session: AsyncSession, *, actor: Staff, customer_id: int, page: int, page_size: int = 5
) -> VisitPage | None:
    """One page of a customer's visits, newest first; None (audited) if the actor may not see it."""
    window = await customer_window(
        session,
        actor=actor,
        customer_id=customer_id,
        record=Visit,
        purpose="visit.list",
        page=page,
        page_size=page_size,
    )
    if window is None:
        return None
    rows = (
        await session.exec(
            select(Visit, Staff.display_name)
            .join(Staff, col(Staff.id) == Visit.salesperson_id)
            .where(Visit.customer_id == customer_id)
            .order_by(col(Visit.visited_at).desc(), col(Visit.id).desc())
            .offset(window.offset)
            .limit(page_size)
        )
    ).all()
    ids = [visit.id for visit, _ in rows]
    counts: dict[int, int] = {}
    if ids:
        counted = await session.exec(
            select(Attachment.visit_id, func.count())
            .where(col(Attachment.visit_id).in_(ids))
            .group_by(col(Attachment.visit_id))
        )
        counts = {visit_id: count for visit_id, count in counted.all() if visit_id is not None}
    entries = [VisitEntry(visit, name, counts.get(visit.id or 0, 0)) for visit, name in rows]
    return VisitPage(window.customer, entries, window.total, window.page, page_size)


async def visit_attachments(
    session: AsyncSession, *, actor: Staff, visit_id: int
) -> tuple[Visit, list[Attachment]] | None:
    """A visit and its attachments, for resending by file id; None (audited) if not visible."""
    visit = await session.get(Visit, visit_id)
    if visit is None:
        await audit.record(
            session,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="visit",
            entity_id=visit_id,
            detail={"purpose": "visit.attachments", "exists": False},
        )
        return None
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=visit.customer_id, purpose="visit.attachments"
    )
    if customer is None:
        return None
    rows = await session.exec(
        select(Attachment).where(Attachment.visit_id == visit_id).order_by(col(Attachment.id))
    )
    return visit, list(rows.all())


def parse_moment(value: str, *, now: datetime) -> datetime:
    """A typed point in time, in `now`'s time zone (storage.dates): `15:30` (today), `11-21`,
    `11-21 15:30`, `2026-11-21 15:30`, `11月21日 15:30`, `昨天下午3点`, `yesterday 15:30`,
    `周五 10:00` (the latest Friday: a moment is in the past). A day alone means that day at the
    current time of day.

    Raises `Invalid` with `moment` (unreadable), `moment_early` (before 2000) or
    `moment_future` (later than now).
    """
    try:
        day, at = dates.parse_when(value, today=now.date(), prefer="past")
    except dates.NotADate as error:
        raise validation.Invalid("moment") from error
    at = at or now.time().replace(second=0, microsecond=0)
    when = datetime.combine(day, at.replace(tzinfo=None), tzinfo=now.tzinfo)
    if when.date() < validation.EARLIEST_RECORD:  # year 1 would overflow once in UTC
        raise validation.Invalid("moment_early", earliest=validation.EARLIEST_RECORD.isoformat())
    if when > now + FUTURE_TOLERANCE:
        raise validation.Invalid("moment_future")
    return when
