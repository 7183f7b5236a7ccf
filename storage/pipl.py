"""PIPL (个人信息保护法) requests: everything the archive holds about one customer or key person.

A data subject may ask what is held about them (right of access) and to have it erased. The
access export gathers, for an admin (`permissions.can_answer_pipl_request`) or the server's
operator (actor None, the command line), every value the archive holds: the customer's clear
and sealed fields (opened), its key persons, visits (texts, times, kinds, places, attachments'
kinds and file ids), complaints, reviews, its history (change records, opened) and the audit
entries about reads of its data, with who and when. A key person's export holds their fields,
their history lines, the reads of their data and the customer they belong to.

The result is a plain JSON-ready document (strings, numbers, lists, dicts): storage never
renders it; conversations/pipl.py writes it as files. Gathering audits `pipl.access` (ids
and counts only, no personal data); a refusal audits `access.denied` and raises Refused,
which the caller catches inside its unit of work so the entry stays. A destroyed customer's
export says so and holds no personal data (its tombstone's number and dates only).

Erasure: a customer's goes through a destruction request (`life_cycle.request(kind="destroy",
pipl=True)`, decided by a second person); a key person's is `erase_key_person`, which removes
them through `key_persons.remove_key_person` and audits `pipl.erasure`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, checkin, customers, key_persons, vault
from storage import fields as catalogue
from storage.crypto import DecryptionError, Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    Attachment,
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    KeyPerson,
    RecordStatus,
    Review,
    Staff,
    Team,
    Visit,
)
from storage.permissions import can_answer_pipl_request

FORMAT = 1  # the document's layout version, for whoever reads exports made today later
# audit actions that are reads of a customer's or key person's data (reveals, views, exports);
# an action starting with one of READ_PREFIXES counts too (the export feature's, for example)
READ_ACTIONS = frozenset(
    {
        "customer.reveal",
        "customer.view",
        "customer.card",
        "key_person.view_sensitive",
        "pipl.access",
    }
)
READ_PREFIXES = ("export",)
SUBJECT_CUSTOMER = "customer"
SUBJECT_KEY_PERSON = "key_person"


@dataclass(frozen=True)
class AccessExport:
    """One access export: what it is about, and the document itself (JSON-ready)."""

    subject: str  # customer / key_person
    customer_id: int
    customer_no: str
    key_person_id: int | None
    destroyed: bool
    document: dict[str, Any]

    def counts(self) -> dict[str, int]:
        """How many of each part it holds (for the audit entry and the caption)."""
        return {
            part: len(self.document[part])
            for part in ("key_persons", "visits", "complaints", "reviews", "history", "reads")
            if isinstance(self.document.get(part), list)
        }


def plain(value: Any) -> Any:
    """A value as JSON holds it: days and moments as ISO text, the rest as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return None  # sealed blobs are opened, never exported as they are
    return value


# ---------------------------------------------------------------------------------------------
# refusals and look-ups


async def _rows(session: AsyncSession, query: Any) -> list[Any]:
    """Every row of `query`, as a list (an export reads each record kind whole)."""
    return list((await session.exec(query)).all())


async def _deny(session: AsyncSession, actor: Staff, entity: str, entity_id: int | None) -> None:
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity=entity,
        entity_id=entity_id,
        detail={"purpose": "pipl.access"},
    )


async def check(
    session: AsyncSession, actor: Staff | None, entity: str, entity_id: int | None
) -> None:
    """Refuse (audited) anyone but an active admin; the operator (None) may."""
    if actor is not None and not can_answer_pipl_request(actor):
        await _deny(session, actor, entity, entity_id)
        raise Refused("not_allowed")


async def customer_by_number(session: AsyncSession, customer_no: str) -> Customer | None:
    """The customer numbered `customer_no` (as cards print it: KH-2026-000123)."""
    number = customer_no.strip().upper()
    if not number or len(number) > 20:
        return None
    return (await session.exec(select(Customer).where(Customer.customer_no == number))).first()


async def _names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.exec(select(Staff.id, Staff.display_name).where(col(Staff.id).in_(wanted)))
    return {sid: name for sid, name in rows.all() if sid is not None}


def _opened(key: bytes | None, record: ChangeRecord) -> Any:
    if key is None:
        return None
    try:
        return plain(vault.open_change(key, record))
    except DecryptionError:
        return None


async def _key_or_none(session: AsyncSession, keyring: Keyring, customer_id: int) -> bytes | None:
    try:
        return await vault.data_key(session, keyring, customer_id)
    except DecryptionError:
        return None


def _history_line(record: ChangeRecord, key: bytes | None, names: dict[int, str]) -> dict:
    return {
        "id": record.id,
        "at": plain(record.changed_at),
        "entity": record.entity,
        "entity_id": record.entity_id,
        "action": record.action,
        "by": names.get(record.changed_by) if record.changed_by is not None else None,
        "review_id": record.review_id,
        "changes": _opened(key, record),
    }


def _read_line(entry: AuditEntry, names: dict[int, str]) -> dict:
    detail: Any = None
    if entry.detail:
        try:
            detail = json.loads(entry.detail)
        except ValueError:
            detail = entry.detail
    who = names.get(entry.actor_staff_id) if entry.actor_staff_id is not None else None
    return {
        "id": entry.id,
        "at": plain(entry.at),
        "action": entry.action,
        "by": who,
        "by_staff_id": entry.actor_staff_id,
        "by_telegram_id": entry.actor_telegram_id,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "detail": detail,
    }


def _is_read(action: str) -> Any:
    return or_(
        col(AuditEntry.action).in_(sorted(READ_ACTIONS)),
        *(col(AuditEntry.action).startswith(prefix) for prefix in READ_PREFIXES),
    )


async def _reads(session: AsyncSession, subjects: list[tuple[str, list[int]]]) -> list[AuditEntry]:
    """The audit entries about reads of these records (entity, ids), oldest first."""
    clauses = [
        and_(col(AuditEntry.entity) == entity, col(AuditEntry.entity_id).in_(ids))
        for entity, ids in subjects
        if ids
    ]
    if not clauses:
        return []
    rows = await session.exec(
        select(AuditEntry).where(or_(*clauses), _is_read("")).order_by(col(AuditEntry.id))
    )
    return list(rows.all())


def _attachment(row: Attachment) -> dict[str, Any]:
    return {
        "id": row.id,
        "attachment_kind": row.kind,
        "file_id": row.file_id,
        "file_unique_id": row.file_unique_id,
        "added_at": plain(row.created_at),
    }


async def _audit_access(
    session: AsyncSession, actor: Staff | None, export: AccessExport, via: str
) -> None:
    entity = export.subject
    entity_id = export.key_person_id if entity == SUBJECT_KEY_PERSON else export.customer_id
    await audit.record(
        session,
        action="pipl.access",
        actor_staff_id=actor.id if actor else None,
        actor_telegram_id=actor.telegram_id if actor else None,
        entity=entity,
        entity_id=entity_id,
        detail={
            "customer_id": export.customer_id,
            "via": via,
            "destroyed": export.destroyed,
            "counts": export.counts(),
        },
    )


def _header(subject: str, actor: Staff | None, now: datetime) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "subject": subject,
        "produced_at": plain(now),
        "produced_by": actor.display_name if actor is not None else None,
    }


# ---------------------------------------------------------------------------------------------
# a customer


async def export_customer(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff | None,
    customer_id: int,
    now: datetime,
    via: str = "chat",
) -> AccessExport:
    """Everything held about one customer, audited as `pipl.access`.

    Raises Refused("not_allowed") for anyone but an active admin (audited; actor None is the
    command line's operator) and NotFound for no such customer.
    """
    await check(session, actor, "customer", customer_id)
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.id is None:
        raise NotFound()
    if customer.status == RecordStatus.destroyed:
        export = _destroyed(customer, actor, now)
    else:
        export = await _gather_customer(session, keyring, customer, actor, now)
    await _audit_access(session, actor, export, via)
    return export


def _destroyed(customer: Customer, actor: Staff | None, now: datetime) -> AccessExport:
    """A tombstone holds no personal data: its number, that it is destroyed, and when."""
    assert customer.id is not None
    document = {
        **_header(SUBJECT_CUSTOMER, actor, now),
        "destroyed": True,
        "customer": {
            "id": customer.id,
            "customer_no": customer.customer_no,
            "status": customer.status,
            "created_at": plain(customer.created_at),
            "destroyed_at": plain(customer.destroyed_at),
        },
    }
    return AccessExport(SUBJECT_CUSTOMER, customer.id, customer.customer_no, None, True, document)


async def _gather_customer(
    session: AsyncSession, keyring: Keyring, customer: Customer, actor: Staff | None, now: datetime
) -> AccessExport:
    cid = customer.id
    assert cid is not None
    key = await vault.data_key(session, keyring, cid)
    sealed = vault.open_customer(key, customer) or {}
    values = {
        f.name: plain(sealed.get(f.name) if f.sealed else getattr(customer, f.name))
        for f in catalogue.CUSTOMER
    }
    people = await _rows(
        session, select(KeyPerson).where(KeyPerson.customer_id == cid).order_by(col(KeyPerson.id))
    )
    visits = await _rows(
        session,
        select(Visit)
        .where(Visit.customer_id == cid)
        .order_by(col(Visit.visited_at), col(Visit.id)),
    )
    complaints = await _rows(
        session,
        select(Complaint)
        .where(Complaint.customer_id == cid)
        .order_by(col(Complaint.received_at), col(Complaint.id)),
    )
    reviews = await _rows(
        session, select(Review).where(Review.customer_id == cid).order_by(col(Review.id))
    )
    changes = await _rows(
        session,
        select(ChangeRecord)
        .where(ChangeRecord.customer_id == cid)
        .order_by(col(ChangeRecord.changed_at), col(ChangeRecord.id)),
    )
    visit_ids = [v.id for v in visits if v.id is not None]
    complaint_ids = [c.id for c in complaints if c.id is not None]
    attachments: list[Attachment] = []
    if visit_ids or complaint_ids:
        attachments = await _rows(
            session,
            select(Attachment)
            .where(
                or_(
                    col(Attachment.visit_id).in_(visit_ids),
                    col(Attachment.complaint_id).in_(complaint_ids),
                )
            )
            .order_by(col(Attachment.id)),
        )
    # key persons removed earlier still have history lines (and perhaps reads) under their id
    person_ids = sorted(
        {p.id for p in people if p.id is not None}
        | {c.entity_id for c in changes if c.entity == "key_person"}
    )
    reads = await _reads(
        session,
        [
            ("customer", [cid]),
            ("key_person", person_ids),
            ("visit", visit_ids),
            ("complaint", complaint_ids),
        ],
    )
    names = await _names(
        session,
        {customer.owner_id}
        | {v.salesperson_id for v in visits}
        | {c.received_by for c in complaints}
        | {c.handler_id for c in complaints}
        | {c.approver_id for c in complaints}
        | {r.submitted_by for r in reviews}
        | {r.decided_by for r in reviews}
        | {c.changed_by for c in changes}
        | {e.actor_staff_id for e in reads},
    )
    team = await session.get(Team, customer.team_id) if customer.team_id is not None else None
    opened_people = [await key_persons._open(session, keyring, p, key) for p in people]
    by_person = {p.id: p for p in people}
    document = {
        **_header(SUBJECT_CUSTOMER, actor, now),
        "destroyed": False,
        "customer": {
            "id": cid,
            "customer_no": customer.customer_no,
            "status": customer.status,
            "owner": names.get(customer.owner_id),
            "team": team.name if team is not None else None,
            "created_at": plain(customer.created_at),
            "updated_at": plain(customer.updated_at),
            "submitted_at": plain(customer.submitted_at),
            "approved_at": plain(customer.approved_at),
            "archived_at": plain(customer.archived_at),
            "last_visit_on": plain(customer.last_visit_on),
            "pooled_at": plain(customer.pooled_at),
            "fields": values,
            "location": await _location(session, keyring, customer),
        },
        "consent": {
            "given": bool(customer.consent_given),
            "method": values.get("consent_method"),
            "on": values.get("consent_on"),
            "note": values.get("consent_note"),
        },
        "key_persons": [
            {
                "id": person.id,
                "created_at": plain(by_person[person.id].created_at),
                "updated_at": plain(by_person[person.id].updated_at),
                "fields": plain(person.values),
            }
            for person in opened_people
        ],
        "visits": [_visit(v, names, attachments) for v in visits],
        "complaints": [_complaint(c, names, attachments) for c in complaints],
        "reviews": [_review(r, key, names) for r in reviews],
        "history": [_history_line(c, key, names) for c in changes],
        "reads": [_read_line(e, names) for e in reads],
    }
    return AccessExport(SUBJECT_CUSTOMER, cid, customer.customer_no, None, False, document)


async def _location(
    session: AsyncSession, keyring: Keyring, customer: Customer
) -> dict[str, Any] | None:
    """The customer's own location (storage.checkin), opened, with when it was set."""
    place = await checkin.customer_location(session, keyring, customer)
    if place is None:
        return None
    return {
        "latitude": place.latitude,
        "longitude": place.longitude,
        "set_at": plain(customer.location_set_at),
    }


def _visit(visit: Visit, names: dict[int, str], attachments: list[Attachment]) -> dict[str, Any]:
    return {
        "id": visit.id,
        "visited_at": plain(visit.visited_at),
        "visit_kind": visit.kind,
        "salesperson": names.get(visit.salesperson_id),
        "latitude": visit.latitude,
        "longitude": visit.longitude,
        "accuracy_m": visit.accuracy_m,
        "checkin_distance_m": visit.checkin_distance_m,
        "checkin_flagged": visit.checkin_flagged,
        "checked_in_at": plain(visit.checked_in_at),
        "checked_out_at": plain(visit.checked_out_at),
        "purpose": visit.purpose,
        "discussion": visit.discussion,
        "needs_feedback": visit.needs_feedback,
        "outcome": visit.outcome,
        "stage_change": visit.stage_change,
        "next_followup_on": plain(visit.next_followup_on),
        "created_at": plain(visit.created_at),
        "attachments": [_attachment(a) for a in attachments if a.visit_id == visit.id],
    }


def _complaint(
    complaint: Complaint, names: dict[int, str], attachments: list[Attachment]
) -> dict[str, Any]:
    return {
        "id": complaint.id,
        "complaint_no": complaint.complaint_no,
        "received_at": plain(complaint.received_at),
        "received_by": names.get(complaint.received_by),
        "channel": complaint.channel,
        "complaint_type": complaint.type,
        "severity": complaint.severity,
        "description": complaint.description,
        "status": complaint.status,
        "handler": names.get(complaint.handler_id) if complaint.handler_id else None,
        "resolution": complaint.resolution,
        "approver": names.get(complaint.approver_id) if complaint.approver_id else None,
        "feedback": complaint.feedback,
        "feedback_at": plain(complaint.feedback_at),
        "due_at": plain(complaint.due_at),
        "closed_at": plain(complaint.closed_at),
        "attachments": [_attachment(a) for a in attachments if a.complaint_id == complaint.id],
    }


def _review(review: Review, key: bytes, names: dict[int, str]) -> dict[str, Any]:
    changes = None
    if review.changes_sealed is not None and review.id is not None:
        try:
            changes = plain(
                vault.unseal(key, review.changes_sealed, table="reviews", row_id=review.id)
            )
        except DecryptionError:
            changes = None
    return {
        "id": review.id,
        "review_kind": review.kind,
        "status": review.status,
        "submitted_by": names.get(review.submitted_by),
        "submitted_at": plain(review.submitted_at),
        "decided_by": names.get(review.decided_by) if review.decided_by else None,
        "decided_at": plain(review.decided_at),
        "reason": review.reason,
        "request_reason": review.request_reason,
        "changes": changes,
    }


# ---------------------------------------------------------------------------------------------
# a key person


async def export_key_person(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff | None,
    key_person_id: int,
    now: datetime,
    customer_id: int | None = None,
    via: str = "chat",
) -> AccessExport:
    """Everything held about one key person, audited as `pipl.access`.

    `customer_id`, when a button names one, must be the person's customer (NotFound
    otherwise). Refused / NotFound as `export_customer`.
    """
    await check(session, actor, "key_person", key_person_id)
    person = await session.get(KeyPerson, key_person_id)
    if person is None or person.id is None or (customer_id not in (None, person.customer_id)):
        raise NotFound()
    customer = await session.get(Customer, person.customer_id)
    if customer is None or customer.id is None or customer.status == RecordStatus.destroyed:
        raise NotFound()
    key = await vault.data_key(session, keyring, customer.id)
    opened = await key_persons._open(session, keyring, person, key)
    changes = await _rows(
        session,
        select(ChangeRecord)
        .where(
            ChangeRecord.customer_id == customer.id,
            ChangeRecord.entity == "key_person",
            ChangeRecord.entity_id == person.id,
        )
        .order_by(col(ChangeRecord.changed_at), col(ChangeRecord.id)),
    )
    reads = await _reads(session, [("key_person", [person.id])])
    names = await _names(
        session, {c.changed_by for c in changes} | {e.actor_staff_id for e in reads}
    )
    document = {
        **_header(SUBJECT_KEY_PERSON, actor, now),
        "destroyed": False,
        "key_person": {
            "id": person.id,
            "created_at": plain(person.created_at),
            "updated_at": plain(person.updated_at),
            "fields": plain(opened.values),
        },
        "customer": {"id": customer.id, "customer_no": customer.customer_no, "name": customer.name},
        "history": [_history_line(c, key, names) for c in changes],
        "reads": [_read_line(e, names) for e in reads],
    }
    export = AccessExport(
        SUBJECT_KEY_PERSON, customer.id, customer.customer_no, person.id, False, document
    )
    await _audit_access(session, actor, export, via)
    return export


async def erase_key_person(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff,
    customer_id: int,
    key_person_id: int,
    version: int,
) -> key_persons.KeyPersonRecord:
    """Erase a key person on their PIPL request: removed through key_persons.remove_key_person
    (its own history line and audit entry), and audited `pipl.erasure`.

    Refused("not_allowed") for anyone but an active admin (audited), NotFound if the customer
    or person is gone, Refused("read_only") for an archived customer (erase the customer
    instead), ChangedMeanwhile if the person changed since `version`.
    """
    await check(session, actor, "key_person", key_person_id)
    customer = await customers.visible_customer(
        session, actor=actor, customer_id=customer_id, purpose="pipl.erasure"
    )
    if customer is None:
        raise NotFound()
    removed = await key_persons.remove_key_person(
        session,
        keyring=keyring,
        actor=actor,
        customer=customer,
        key_person_id=key_person_id,
        version=version,
    )
    await audit.record(
        session,
        action="pipl.erasure",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="key_person",
        entity_id=key_person_id,
        detail={"customer_id": customer_id, "subject": SUBJECT_KEY_PERSON},
    )
    return removed
