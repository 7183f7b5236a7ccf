"""Destruction (销毁) beyond the decision: the ledger kept in step with whatever database the bot
opens or restores, the tombstone a destroyed customer leaves, and the notices it takes back.

The decision itself is storage.life_cycle's (a destroy review), the wiping storage.erasure's.
This module makes the erasure stick:
- `sync` (start-up, `python -m bot erasures --reapply`, and every restore): read the ledger
  (refusing a forged one), erase again what the database still holds of what it names (a
  backup from before the erasure), and append what the database shows destroyed but the ledger
  lacks (a crash between a commit and its ledger line);
- `check_backup_head`: a backup's manifest records the ledger's head when it was taken; the
  ledger here must reach it, or it is older than the backup and cannot be trusted to name every
  erasure the backup's data has seen;
- `tombstone`: what a destroyed customer's card still shows;
- `take_back_notices`: review cards sent earlier about the customer name it; they are deleted
  through the outbox when the destruction commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import erasure, outbox, permissions
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.erasure_ledger import Entry, Erased, Head, Ledger, LedgerError
from storage.models import (
    Complaint,
    Customer,
    DataKey,
    KeyPerson,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewNotice,
    ReviewStatus,
    Staff,
)

log = logging.getLogger(__name__)
_CHUNK = 500
COPY_LEDGER = (
    "copy erasures.log from the installation the backup came from (it is kept beside the "
    "keys: DATA_DIR, or ERASURE_LEDGER), with the keys, then restore again"
)


@dataclass(frozen=True)
class Synced:
    """What one `sync` found: the ledger's head, what it erased again, what it appended."""

    head: Head
    reapplied: erasure.Reapplied
    recorded: int
    seconds: float


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


async def still_held(session: AsyncSession, entries: Sequence[Entry]) -> list[Entry]:
    """The entries whose records this database still holds in a readable form: read in a few
    IN queries, so a ledger of many lines over a database that holds none of them is quick."""
    by_kind: dict[str, list[Entry]] = {}
    for entry in entries:
        by_kind.setdefault(entry.kind, []).append(entry)
    held: set[tuple[str, int]] = set()
    customers = [e.record_id for e in by_kind.get(Erased.customer, [])]
    for ids in _chunks(customers):
        rows = await session.exec(
            select(Customer.id, Customer.status).where(col(Customer.id).in_(ids))
        )
        found = {cid: status for cid, status in rows.all()}
        keys = await session.exec(
            select(DataKey.customer_id).where(
                col(DataKey.customer_id).in_(list(found)), col(DataKey.wrapped).is_not(None)
            )
        )
        keyed = set(keys.all())
        held |= {
            (Erased.customer, cid)
            for cid, status in found.items()
            if status != RecordStatus.destroyed or cid in keyed
        }
    for kind, model in ((Erased.key_person, KeyPerson), (Erased.complaint, Complaint)):
        ids_of_kind = [e.record_id for e in by_kind.get(kind, [])]
        for ids in _chunks(ids_of_kind):
            rows = await session.exec(select(model.id).where(col(model.id).in_(ids)))
            held |= {(kind, i) for i in rows.all() if i is not None}
    return [entry for entry in entries if (entry.kind, entry.record_id) in held]


async def sync(
    sessions: SessionFactory, ledger: Ledger, keyring: Keyring, *, now: datetime
) -> Synced:
    """Read the ledger (LedgerError if forged), erase again what the database still holds of
    it, append what it lacks; one unit of work, so a failure leaves the database as it was."""
    started = time.perf_counter()
    entries, head = ledger.read()
    async with unit_of_work(sessions) as session:
        reapplied = await apply(session, ledger, keyring, entries, now=now)
        recorded = await erasure.record_missing(session, ledger, entries)
    if recorded:
        head = ledger.head()
    return Synced(head, reapplied, recorded, time.perf_counter() - started)


async def apply(
    session: AsyncSession,
    ledger: Ledger,
    keyring: Keyring,
    entries: Sequence[Entry],
    *,
    now: datetime,
) -> erasure.Reapplied:
    """Erase again, in the caller's unit of work, what `entries` name and the database holds."""
    held = await still_held(session, entries)
    reapplied = await erasure.reapply(session, keyring, held, now=now) if held else None
    if reapplied and reapplied.total:
        log.warning(
            "re-applied %d erasures from %s that the database still held (%d customers, %d key "
            "persons, %d complaints)",
            reapplied.total,
            ledger.path,
            reapplied.customers,
            reapplied.key_persons,
            reapplied.complaints,
        )
    return reapplied or erasure.Reapplied()


def head_of_manifest(value: Any) -> Head | None:
    """A manifest's `erasures` field ({count, mac}); None when an older backup has none."""
    if not isinstance(value, dict):
        return None
    try:
        return Head(int(value["count"]), str(value["mac"]))
    except (KeyError, TypeError, ValueError):
        return None


def check_backup_head(ledger: Ledger, expected: Head | None) -> tuple[list[Entry], Head]:
    """Read the ledger and check it reaches the backup's recorded head.

    Raises LedgerError with what to do: forged, or older than the backup.
    """
    entries, head = ledger.read()
    if expected is not None and not ledger.reaches(expected):
        raise LedgerError(
            f"the erasure ledger {ledger.path} holds {head.count} entries and does not reach "
            f"the {expected.count} the backup was taken with (it is older than the backup, or "
            f"another installation's): {COPY_LEDGER}"
        )
    return entries, head


# ---------------------------------------------------------------------------------------------
# the tombstone


@dataclass(frozen=True)
class Tombstone:
    """What is left of a destroyed customer: its number, kind, class, dates, and the record of
    its destruction (who asked, who approved, why)."""

    customer_id: int
    customer_no: str
    kind: str
    customer_class: str
    created_at: datetime
    approved_at: datetime | None
    archived_at: datetime | None
    destroyed_at: datetime | None
    requested_by: str | None
    approved_by: str | None
    reason: str | None


async def tombstone(session: AsyncSession, *, actor: Staff, customer_id: int) -> Tombstone | None:
    """The tombstone of a destroyed customer the actor may see; None for anything else (the
    caller refuses as for a customer that does not exist)."""
    customer = await session.get(Customer, customer_id)
    if (
        customer is None
        or customer.id is None
        or customer.status != RecordStatus.destroyed
        or not permissions.can_view_customer(actor, customer)
    ):
        return None
    review = (
        await session.exec(
            select(Review)
            .where(
                Review.customer_id == customer.id,
                Review.kind == ReviewKind.destroy,
                Review.status == ReviewStatus.approved,
            )
            .order_by(col(Review.decided_at).desc(), col(Review.id).desc())
            .limit(1)
        )
    ).first()
    names: dict[int, str] = {}
    if review is not None:
        people = [i for i in (review.submitted_by, review.decided_by) if i is not None]
        rows = await session.exec(select(Staff).where(col(Staff.id).in_(people)))
        names = {s.id: s.display_name for s in rows.all() if s.id is not None}
    return Tombstone(
        customer_id=customer.id,
        customer_no=customer.customer_no,
        kind=customer.kind,
        customer_class=customer.customer_class,
        created_at=customer.created_at,
        approved_at=customer.approved_at,
        archived_at=customer.archived_at,
        destroyed_at=customer.destroyed_at,
        requested_by=names.get(review.submitted_by) if review else None,
        approved_by=names.get(review.decided_by or 0) if review else None,
        reason=review.request_reason if review else None,
    )


# ---------------------------------------------------------------------------------------------
# review cards sent earlier


async def take_back_notices(
    session: AsyncSession, *, customer_id: int, keep_review_id: int | None, now: datetime
) -> int:
    """Queue the deletion of every review card sent about the customer (they show its name),
    except the destroy review's own (its decision edits it: the destruction record), in the
    destruction's unit of work; the outbox deletes them once it commits. Returns how many."""
    rows = (
        await session.exec(
            select(ReviewNotice, Staff.id)
            .join(Review, col(Review.id) == col(ReviewNotice.review_id))
            .join(Staff, col(Staff.telegram_id) == col(ReviewNotice.chat_id), isouter=True)
            .where(Review.customer_id == customer_id, col(Review.id) != (keep_review_id or 0))
        )
    ).all()
    for notice, staff_id in rows:
        await outbox.queue_message_deletion(
            session,
            chat_id=notice.chat_id,
            message_id=notice.message_id,
            recipient_id=staff_id,
            now=now,
        )
    ids = [notice.id for notice, _ in rows if notice.id is not None]
    if ids:
        await session.exec(delete(ReviewNotice).where(col(ReviewNotice.id).in_(ids)))
    return len(ids)
