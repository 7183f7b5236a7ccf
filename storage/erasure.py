"""Erasing personal data for good: a destroyed customer (销毁), a removed key person or complaint.

Each function wipes every place the record's personal data lives, in the caller's unit of work,
and is idempotent (wiping again finds nothing left): the same functions re-apply the erasure
ledger to a restored backup or a database opened at start-up (`reapply`). What stays is what
the tombstone needs: numbers, dates, kinds, who did what and why (the destroy review), and
history lines that say a change or a removal happened, with their values unreadable.

A destroyed customer: its data key is erased (every sealed value of it, history and pending
changes included, can never be opened again), and the clear columns that could name or locate
a person (name, profile, notes, visits' texts and places, complaints' texts, key persons,
attachments' file ids, rejection reasons, drafts) are emptied or deleted, since a key cannot
shred what was never sealed. Who decides and records these erasures is storage.life_cycle
(destruction) and the key person and complaint modules (removal); this module only wipes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, vault
from storage.crypto import DecryptionError, Keyring
from storage.erasure_ledger import Entry, Erased, Ledger, append_on_commit
from storage.models import (
    Attachment,
    BlindIndex,
    ChangeRecord,
    Complaint,
    Customer,
    DataKey,
    Draft,
    HandoverPick,
    KeyPerson,
    ReassignPick,
    RecordStatus,
    Reminder,
    ReminderStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Visit,
)

log = logging.getLogger(__name__)

# the customer's clear columns that may describe a person or where they are: emptied
_CUSTOMER_CLEAR = (
    "short_name",
    "industry",
    "region",
    "parent_org",
    "size",
    "profile",
    "source",
    "website",
    "credit_status",
    "trade_notes",
)
_VISIT_TEXTS = ("purpose", "discussion", "needs_feedback", "outcome")
_VISIT_PLACE = ("latitude", "longitude", "accuracy_m")
# removal and destruction decisions keep their reason: it is the record of why
_REASONS_KEPT = (ReviewKind.destroy,)


@dataclass(frozen=True)
class Wiped:
    """What one erasure emptied, for the audit entry (counts only)."""

    key_persons: int = 0
    visits: int = 0
    complaints: int = 0
    attachments: int = 0
    history: int = 0
    drafts: int = 0
    reminders: int = 0

    def detail(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if v}


async def _cancel_reminders(
    session: AsyncSession, subject_type: str, ids: Sequence[int], now: datetime
) -> int:
    if not ids:
        return 0
    result = await session.exec(
        update(Reminder)
        .where(
            col(Reminder.subject_type) == subject_type,
            col(Reminder.subject_id).in_(list(ids)),
            col(Reminder.status).in_([ReminderStatus.pending, ReminderStatus.sending]),
        )
        .values(status=ReminderStatus.cancelled, next_attempt_at=None, updated_at=now)
    )
    return result.rowcount or 0


async def cancel_reminders_about(session: AsyncSession, customer_id: int, now: datetime) -> int:
    """Cancel what is pending about a customer, its complaints and its key persons (an archived
    customer is followed up by nobody; a destroyed one is nobody's business)."""
    complaints = list(
        (await session.exec(select(Complaint.id).where(Complaint.customer_id == customer_id))).all()
    )
    persons = list(
        (await session.exec(select(KeyPerson.id).where(KeyPerson.customer_id == customer_id))).all()
    )
    cancelled = await _cancel_reminders(session, "customer", [customer_id], now)
    cancelled += await _cancel_reminders(session, "complaint", [i for i in complaints if i], now)
    return cancelled + await _cancel_reminders(
        session, "key_person", [i for i in persons if i], now
    )


async def _wipe_history(
    session: AsyncSession, *, customer_id: int, entity: str | None = None, ids: Sequence[int] = ()
) -> int:
    """Empty the sealed values of history lines (all of a customer's, or of some records):
    the lines stay, saying who changed what kind of record when."""
    where = [
        col(ChangeRecord.customer_id) == customer_id,
        col(ChangeRecord.diff_sealed).is_not(None),
    ]
    if entity is not None:
        where += [col(ChangeRecord.entity) == entity, col(ChangeRecord.entity_id).in_(list(ids))]
    result = await session.exec(update(ChangeRecord).where(*where).values(diff_sealed=None))
    return result.rowcount or 0


async def _drop_drafts(session: AsyncSession, keyring: Keyring, customer_id: int) -> int:
    """Discard the drafts (sealed per person) whose answers are about this customer: a visit,
    complaint, edit or key person half entered. One per person at most: few to open."""
    dropped = 0
    for draft in (await session.exec(select(Draft).where(col(Draft.sealed).is_not(None)))).all():
        try:
            data = keyring.open_json(draft.sealed or b"", context=f"draft:{draft.staff_id}")
        except DecryptionError:
            continue  # a draft under a key no longer configured cannot name anyone readable
        if isinstance(data, dict) and str(data.get("customer_id")) == str(customer_id):
            await session.delete(draft)
            dropped += 1
    return dropped


async def _drop_attachments(session: AsyncSession, *conditions: Any) -> int:
    result = await session.exec(delete(Attachment).where(or_(*conditions)))
    return result.rowcount or 0


async def erase_customer(
    session: AsyncSession,
    keyring: Keyring,
    *,
    customer_id: int,
    now: datetime,
    ledger: bool = True,
) -> Wiped | None:
    """Destroy a customer's personal data, leaving its tombstone: number, kind, class, dates,
    owner and team, and the reviews and history lines (their values unreadable).

    Sets status `destroyed` and `destroyed_at` (`now`, or kept if already set). Returns what
    was wiped, or None if there is no such customer. `ledger` False is for re-applying an entry
    the ledger already holds. The caller audits and writes the customer's history line.
    """
    customer = (
        await session.exec(select(Customer).where(Customer.id == customer_id).with_for_update())
    ).first()
    if customer is None:
        return None
    await vault.erase_data_key(session, customer_id)
    await session.exec(delete(BlindIndex).where(col(BlindIndex.customer_id) == customer_id))
    person_ids = list(
        (await session.exec(select(KeyPerson.id).where(KeyPerson.customer_id == customer_id))).all()
    )
    await session.exec(delete(KeyPerson).where(col(KeyPerson.customer_id) == customer_id))
    visit_ids = list(
        (await session.exec(select(Visit.id).where(Visit.customer_id == customer_id))).all()
    )
    complaint_ids = list(
        (await session.exec(select(Complaint.id).where(Complaint.customer_id == customer_id))).all()
    )
    attachments = 0
    if visit_ids or complaint_ids:
        attachments = await _drop_attachments(
            session,
            col(Attachment.visit_id).in_(visit_ids),
            col(Attachment.complaint_id).in_(complaint_ids),
        )
    if visit_ids:
        await session.exec(
            update(Visit)
            .where(col(Visit.customer_id) == customer_id)
            .values(**dict.fromkeys(_VISIT_TEXTS + _VISIT_PLACE), updated_at=now)
        )
    if complaint_ids:
        await session.exec(
            update(Complaint)
            .where(col(Complaint.customer_id) == customer_id)
            .values(description="", resolution=None, feedback=None, updated_at=now)
        )
    history = await _wipe_history(session, customer_id=customer_id)
    await session.exec(
        update(Review).where(col(Review.customer_id) == customer_id).values(changes_sealed=None)
    )
    await session.exec(
        update(Review)
        .where(
            col(Review.customer_id) == customer_id,
            col(Review.kind).not_in([str(k) for k in _REASONS_KEPT]),
        )
        .values(reason=None, request_reason=None)
    )
    await session.exec(
        update(Review)
        .where(col(Review.customer_id) == customer_id, col(Review.status) == ReviewStatus.pending)
        .values(status=ReviewStatus.withdrawn, updated_at=now, version=Review.version + 1)
    )
    await session.exec(delete(ReassignPick).where(col(ReassignPick.customer_id) == customer_id))
    await session.exec(delete(HandoverPick).where(col(HandoverPick.customer_id) == customer_id))
    reminders = await _cancel_reminders(session, "customer", [customer_id], now)
    reminders += await _cancel_reminders(session, "complaint", complaint_ids, now)
    reminders += await _cancel_reminders(session, "key_person", [i for i in person_ids if i], now)
    drafts = await _drop_drafts(session, keyring, customer_id)

    for name in _CUSTOMER_CLEAR:
        setattr(customer, name, None)
    customer.name = customer.customer_no  # NOT NULL, and lists must not break on it
    customer.sealed = None
    customer.location_sealed = None  # sealed with the erased key; dropped all the same
    customer.location_set_at = None
    customer.sealed_seq += 1
    customer.status = RecordStatus.destroyed
    customer.destroyed_at = customer.destroyed_at or now
    customer.next_followup_on = None
    customer.pooled_at = None
    customer.version += 1
    customer.updated_at = now  # the name index picks the change up by it (storage.search)
    session.add(customer)
    await session.flush()
    if ledger:
        append_on_commit(
            session,
            [
                Entry.of(
                    Erased.customer,
                    customer_id,
                    customer_id,
                    customer.customer_no,
                    customer.destroyed_at,
                )
            ],
        )
    return Wiped(
        key_persons=len(person_ids),
        visits=len(visit_ids),
        complaints=len(complaint_ids),
        attachments=attachments,
        history=history,
        drafts=drafts,
        reminders=reminders,
    )


async def erase_key_person(
    session: AsyncSession,
    *,
    key_person_id: int,
    customer_id: int,
    now: datetime,
    ledger: bool = True,
) -> Wiped:
    """Remove a key person and every value it left: its row, its phone indexes, its birthday
    reminders, the values of its history lines. The caller writes the line saying it was
    removed (with no values) and audits."""
    await session.exec(delete(BlindIndex).where(col(BlindIndex.key_person_id) == key_person_id))
    removed = await session.exec(
        delete(KeyPerson).where(
            col(KeyPerson.id) == key_person_id, col(KeyPerson.customer_id) == customer_id
        )
    )
    history = await _wipe_history(
        session, customer_id=customer_id, entity="key_person", ids=[key_person_id]
    )
    reminders = await _cancel_reminders(session, "key_person", [key_person_id], now)
    await session.flush()
    if ledger:
        append_on_commit(
            session, [Entry.of(Erased.key_person, key_person_id, customer_id, None, now)]
        )
    return Wiped(key_persons=removed.rowcount or 0, history=history, reminders=reminders)


async def erase_complaint(
    session: AsyncSession,
    *,
    complaint_id: int,
    now: datetime,
    ledger: bool = True,
) -> Wiped | None:
    """Remove a complaint and every value it left: its attachments, reminders, the values of
    its history lines, its reviews' link to it (pending ones withdrawn). The number is never
    reused (storage.numbers). The caller writes the removal's history line and audits."""
    complaint = await session.get(Complaint, complaint_id)
    if complaint is None:
        return None
    number, customer_id = complaint.complaint_no, complaint.customer_id
    attachments = await _drop_attachments(session, col(Attachment.complaint_id) == complaint_id)
    history = await _wipe_history(
        session, customer_id=customer_id, entity="complaint", ids=[complaint_id]
    )
    reminders = await _cancel_reminders(session, "complaint", [complaint_id], now)
    await session.exec(
        update(Review)
        .where(col(Review.complaint_id) == complaint_id, col(Review.status) == ReviewStatus.pending)
        .values(status=ReviewStatus.withdrawn, updated_at=now, version=Review.version + 1)
    )
    await session.exec(
        update(Review)
        .where(col(Review.complaint_id) == complaint_id)
        .values(complaint_id=None, reason=None)
    )
    await session.delete(complaint)
    await session.flush()
    if ledger:
        append_on_commit(
            session, [Entry.of(Erased.complaint, complaint_id, customer_id, number, now)]
        )
    return Wiped(complaints=1, attachments=attachments, history=history, reminders=reminders)


# ---------------------------------------------------------------------------------------------
# the ledger and the database kept in step (start-up, restore)


@dataclass(frozen=True)
class Reapplied:
    """What `reapply` found still readable and erased again."""

    customers: int = 0
    key_persons: int = 0
    complaints: int = 0

    @property
    def total(self) -> int:
        return self.customers + self.key_persons + self.complaints


async def reapply(
    session: AsyncSession, keyring: Keyring, entries: Sequence[Entry], *, now: datetime
) -> Reapplied:
    """Erase again whatever the ledger names and this database still holds (a backup from
    before the erasure, restored): matched by id and number, so another installation's
    records are never touched. Audited per record, without personal data."""
    customers = key_persons = complaints = 0
    for entry in entries:
        if entry.kind == Erased.customer:
            customer = await session.get(Customer, entry.record_id)
            if customer is None or customer.customer_no != entry.number:
                continue
            key = (
                await session.exec(
                    select(col(DataKey.wrapped)).where(DataKey.customer_id == entry.record_id)
                )
            ).first()
            if customer.status == RecordStatus.destroyed and key is None:
                continue
            await erase_customer(
                session,
                keyring,
                customer_id=entry.record_id,
                now=datetime.fromisoformat(entry.at),
                ledger=False,
            )
            customers += 1
        elif entry.kind == Erased.key_person:
            person = await session.get(KeyPerson, entry.record_id)
            if person is None or person.customer_id != entry.customer_id:
                continue
            await erase_key_person(
                session,
                key_person_id=entry.record_id,
                customer_id=entry.customer_id,
                now=now,
                ledger=False,
            )
            key_persons += 1
        elif entry.kind == Erased.complaint:
            complaint = await session.get(Complaint, entry.record_id)
            if complaint is None or complaint.customer_id != entry.customer_id:
                continue
            if entry.number is not None and complaint.complaint_no != entry.number:
                continue
            await erase_complaint(session, complaint_id=entry.record_id, now=now, ledger=False)
            complaints += 1
        else:
            continue
        await audit.record(
            session,
            action="erasure.reapplied",
            entity=entry.kind,
            entity_id=entry.record_id,
            detail={"erased_at": entry.at},
        )
    return Reapplied(customers, key_persons, complaints)


async def record_missing(session: AsyncSession, ledger: Ledger, entries: Sequence[Entry]) -> int:
    """Append to the ledger the destroyed customers it lacks (the process died between a
    destruction's commit and its ledger line). Removed key persons and complaints leave no
    row to find; their `remove` history lines name them."""
    known = {entry.key for entry in entries}
    missing: list[Entry] = []
    rows = await session.exec(
        select(Customer.id, Customer.customer_no, Customer.destroyed_at).where(
            Customer.status == RecordStatus.destroyed
        )
    )
    for customer_id, number, destroyed_at in rows.all():
        if (Erased.customer, customer_id) not in known and destroyed_at is not None:
            missing.append(
                Entry.of(Erased.customer, customer_id, customer_id, number, destroyed_at)
            )
    removals = await session.exec(
        select(
            ChangeRecord.entity,
            ChangeRecord.entity_id,
            ChangeRecord.customer_id,
            ChangeRecord.changed_at,
        ).where(
            col(ChangeRecord.action) == "remove",
            col(ChangeRecord.entity).in_([Erased.key_person, Erased.complaint]),
        )
    )
    for entity, entity_id, customer_id, changed_at in removals.all():
        if (entity, entity_id) not in known:
            # a complaint's number went with its row; the entry matches it by id alone then
            missing.append(Entry.of(Erased(entity), entity_id, customer_id, None, changed_at))
    ledger.append(missing)
    if missing:
        log.warning("appended %d erasures missing from %s", len(missing), ledger.path)
    return len(missing)
