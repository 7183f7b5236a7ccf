"""Customers changing hands: the one writer of `Customer.owner_id` after creation.

A hand-over (离职/调岗交接), a reassignment in post (在职继承), a release into the team pool (公海)
and a claim or assignment from it all move the same things together, in the caller's
transaction: the customer's owner (and its team when the new owner works in another), the open
complaints its old owner handled, the old owner's pending reminders about it and about those
complaints, and its pending reviews (so the decision reaches whoever now owns the record). Each
customer's history gets a line, sealed with its data key; the move is audited once.

Who may move what is the caller's rule (storage.handover, storage.pool and storage.reassign ask
storage.permissions first): this module only moves, exactly and in bulk, so 5,000 customers of a
leaver move in one transaction of a few statements per 500.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, vault
from storage.crypto import Keyring
from storage.models import (
    ChangeRecord,
    Complaint,
    ComplaintStatus,
    Customer,
    DataKey,
    Reminder,
    ReminderStatus,
    Review,
    ReviewStatus,
    Staff,
    Transfer,
)
from storage.types import utcnow

CHUNK = 500  # ids per IN (...): far below SQLite's and asyncpg's bound-parameter limits
OWNER_FIELD = "owner"  # the history diff's field: {"owner": [old name, new name]}
HANDLER_FIELD = "handler"


@dataclass(frozen=True)
class Moved:
    """What one move changed: the customers moved (ids), and how many of the rest followed."""

    customer_ids: tuple[int, ...] = ()
    complaint_ids: tuple[int, ...] = ()
    reminders: int = 0
    reviews: int = 0
    from_owners: frozenset[int] = field(default_factory=frozenset)

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    @property
    def complaints(self) -> int:
        return len(self.complaint_ids)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.exec(select(Staff.id, Staff.display_name).where(col(Staff.id).in_(ids)))
    return {staff_id: name for staff_id, name in rows.all() if staff_id is not None}


async def _data_keys(session: AsyncSession, keyring: Keyring, ids: list[int]) -> dict[int, bytes]:
    """The data keys of these customers in one query; an erased key is simply absent."""
    rows = await session.exec(
        select(DataKey.customer_id, DataKey.kek_id, DataKey.wrapped).where(
            col(DataKey.customer_id).in_(ids)
        )
    )
    return {
        customer_id: keyring.unwrap(kid, wrapped, customer_id=customer_id)
        for customer_id, kid, wrapped in rows.all()
        if wrapped is not None
    }


def _change(
    *,
    entity: str,
    entity_id: int,
    customer_id: int,
    action: str,
    changed_by: int | None,
    changed_at: datetime,
) -> dict[str, Any]:
    """A history line as a row (ChangeRecord's columns), for writing in bulk."""
    return {
        "entity": entity,
        "entity_id": entity_id,
        "customer_id": customer_id,
        "action": action,
        "changed_by": changed_by,
        "changed_at": changed_at,
        "review_id": None,
        "diff_sealed": None,
    }


async def _new_change_ids(session: AsyncSession, count: int) -> list[int]:
    """Ids for `count` new history lines, taken before they are written, so each line's diff
    is sealed to its id and written with it, in one statement per chunk."""
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.exec(
            text(  # type: ignore[call-overload]
                "SELECT nextval(pg_get_serial_sequence('change_records', 'id'))"
                " FROM generate_series(1, :count)"
            ).bindparams(count=count)
        )
        return [int(row[0]) for row in rows.all()]
    # SQLite: the unit of work holds the database's write lock (BEGIN IMMEDIATE), so nobody
    # else writes a line meanwhile; lines this session added but did not flush are flushed first
    top = (await session.exec(select(func.max(ChangeRecord.id)))).one()
    first = int(top or 0) + 1
    return list(range(first, first + count))


async def _history(
    session: AsyncSession,
    keys: dict[int, bytes],
    records: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    """Add history lines, each with its difference sealed to its id (ids taken first).

    Thousands of ORM objects flushed one by one, then their seals, cost seconds; rows written
    in bulk cost milliseconds (tests/bench/handover.py)."""
    if not records:
        return
    ids = await _new_change_ids(session, len(records))
    rows = []
    for record_id, (row, diff) in zip(ids, records, strict=True):
        key = keys.get(row["customer_id"])
        sealed = None
        if key is not None:
            sealed = vault.seal_change_row(
                key,
                diff,
                record_id=record_id,
                entity=row["entity"],
                entity_id=row["entity_id"],
                action=row["action"],
            )
        rows.append({**row, "id": record_id, "diff_sealed": sealed})
    table = ChangeRecord.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), CHUNK):
        await session.exec(insert(table), params=rows[start : start + CHUNK])  # type: ignore[call-overload]


def _moved_key(dedup_key: str, recipient_id: int) -> str:
    """The dedup key of the same reminder for another recipient (planning.dedup_key's format:
    kind:subject type:subject id:recipient:period)."""
    parts = dedup_key.split(":", 4)
    parts[3] = str(recipient_id)
    return ":".join(parts)


async def _move_reminders(
    session: AsyncSession,
    *,
    subject_type: str,
    subjects_by_old: dict[int, list[int]],
    to_id: int,
    now: datetime,
) -> int:
    """Re-address the old recipients' pending reminders about these subjects; where the new
    recipient already has the same reminder, the old one is cancelled rather than doubled."""
    moves: list[dict[str, Any]] = []
    for old_id, subject_ids in subjects_by_old.items():
        if old_id == to_id:
            continue
        for chunk in _chunks(subject_ids):
            rows = await session.exec(
                select(Reminder.id, Reminder.dedup_key).where(
                    Reminder.subject_type == subject_type,
                    col(Reminder.subject_id).in_(chunk),
                    Reminder.recipient_id == old_id,
                    Reminder.status == ReminderStatus.pending,
                )
            )
            moves.extend(
                {"id": reminder_id, "key": _moved_key(key, to_id)} for reminder_id, key in rows
            )
    if not moves:
        return 0
    taken: set[str] = set()
    for chunk in _chunks([m["key"] for m in moves]):  # type: ignore[arg-type]
        rows = await session.exec(
            select(Reminder.dedup_key).where(col(Reminder.dedup_key).in_(chunk))
        )
        taken.update(rows.all())
    moved, cancelled = [], []
    for move in moves:
        if move["key"] in taken:
            cancelled.append(move["id"])
        else:
            taken.add(move["key"])
            moved.append(
                {
                    "id": move["id"],
                    "recipient_id": to_id,
                    "dedup_key": move["key"],
                    "updated_at": now,
                }
            )
    if moved:
        await session.exec(update(Reminder), params=moved)  # type: ignore[call-overload]
    for chunk in _chunks(cancelled):
        await session.exec(
            update(Reminder)
            .where(col(Reminder.id).in_(chunk))
            .values(status=ReminderStatus.cancelled, updated_at=now)
        )
    return len(moves)


async def move_customers(
    session: AsyncSession,
    keyring: Keyring,
    *,
    customer_ids: Sequence[int],
    to_staff: Staff,
    actor_id: int | None,
    transfer: Transfer,
    only_if: Sequence[Any] = (),
    audit_detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Moved:
    """Give these customers to `to_staff`, with what follows their owner (module docstring).

    `only_if` adds WHERE clauses checked on the locked rows (e.g. "still in the pool"): a
    customer that no longer matches is skipped, which is how of two people claiming one
    customer at once exactly one wins. `now` is the caller's clock (the bot's), which stamps
    the move, its history and a claim's `claimed_at`. Returns what moved; nothing moved is an
    empty `Moved`.
    """
    assert to_staff.id is not None
    now = now or utcnow()
    claimed_at = now if transfer == Transfer.pool_claim else None
    rows: list[tuple[int, int, int | None]] = []
    for chunk in _chunks(list(dict.fromkeys(customer_ids))):
        found = await session.exec(
            select(Customer.id, Customer.owner_id, Customer.team_id)
            .where(col(Customer.id).in_(chunk), *only_if)
            .with_for_update()
        )
        rows.extend((cid, owner, team) for cid, owner, team in found.all() if cid is not None)
    if not rows:
        return Moved()
    ids = [cid for cid, _, _ in rows]
    new_team = to_staff.team_id
    for chunk in _chunks(ids):
        values: dict[str, Any] = {
            "owner_id": to_staff.id,
            "pooled_at": None,
            "claimed_at": claimed_at,
            "version": col(Customer.version) + 1,
            "updated_at": now,
        }
        if new_team is not None:
            values["team_id"] = new_team
        await session.exec(update(Customer).where(col(Customer.id).in_(chunk)).values(**values))

    by_old: dict[int, list[int]] = defaultdict(list)
    for cid, owner, _ in rows:
        by_old[owner].append(cid)
    complaints_by_old: dict[int, list[int]] = defaultdict(list)
    complaint_rows: list[tuple[int, int, int]] = []  # complaint, customer, old handler
    reviews = 0
    for old_id, owned in by_old.items():
        for chunk in _chunks(owned):
            found = await session.exec(
                select(Complaint.id, Complaint.customer_id).where(
                    col(Complaint.customer_id).in_(chunk),
                    Complaint.handler_id == old_id,
                    Complaint.status != ComplaintStatus.closed,
                )
            )
            for complaint_id, customer_id in found.all():
                if complaint_id is not None and old_id != to_staff.id:
                    complaints_by_old[old_id].append(complaint_id)
                    complaint_rows.append((complaint_id, customer_id, old_id))
            review_values: dict[str, Any] = {"submitted_by": to_staff.id, "updated_at": now}
            if new_team is not None:
                review_values["team_id"] = new_team
            result = await session.exec(
                update(Review)
                .where(
                    col(Review.customer_id).in_(chunk),
                    Review.status == ReviewStatus.pending,
                    Review.submitted_by == old_id,
                )
                .values(**review_values)
            )
            reviews += result.rowcount or 0
            if new_team is not None:  # someone else's pending review follows the team too
                await session.exec(
                    update(Review)
                    .where(
                        col(Review.customer_id).in_(chunk),
                        Review.status == ReviewStatus.pending,
                    )
                    .values(team_id=new_team, updated_at=now)
                )
    complaint_ids = [complaint_id for complaint_id, _, _ in complaint_rows]
    for chunk in _chunks(complaint_ids):
        await session.exec(
            update(Complaint)
            .where(col(Complaint.id).in_(chunk))
            .values(handler_id=to_staff.id, version=col(Complaint.version) + 1, updated_at=now)
        )
    reminders = await _move_reminders(
        session, subject_type="customer", subjects_by_old=by_old, to_id=to_staff.id, now=now
    )
    reminders += await _move_reminders(
        session,
        subject_type="complaint",
        subjects_by_old=complaints_by_old,
        to_id=to_staff.id,
        now=now,
    )

    names = await _names(session, {*by_old, to_staff.id})
    keys: dict[int, bytes] = {}
    for chunk in _chunks(ids):
        keys.update(await _data_keys(session, keyring, chunk))
    records: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for cid, owner, _ in rows:
        record = _change(
            entity="customer",
            entity_id=cid,
            customer_id=cid,
            action=transfer,
            changed_by=actor_id,
            changed_at=now,
        )
        records.append((record, {OWNER_FIELD: [names.get(owner), names.get(to_staff.id)]}))
    for complaint_id, customer_id, old_id in complaint_rows:
        record = _change(
            entity="complaint",
            entity_id=complaint_id,
            customer_id=customer_id,
            action=transfer,
            changed_by=actor_id,
            changed_at=now,
        )
        records.append((record, {HANDLER_FIELD: [names.get(old_id), names.get(to_staff.id)]}))
    await _history(session, keys, records)

    moved = Moved(
        customer_ids=tuple(ids),
        complaint_ids=tuple(complaint_ids),
        reminders=reminders,
        reviews=reviews,
        from_owners=frozenset(by_old),
    )
    await audit.record(
        session,
        action=f"customer.{transfer}",
        actor_staff_id=actor_id,
        entity="customer" if len(ids) == 1 else "staff",
        entity_id=ids[0] if len(ids) == 1 else to_staff.id,
        detail={
            "to": to_staff.id,
            "from": sorted(by_old),
            "customers": len(ids),
            "complaints": len(complaint_ids),
            "reminders": reminders,
            "reviews": reviews,
            **(audit_detail or {}),
        },
    )
    return moved


async def move_complaints(
    session: AsyncSession,
    keyring: Keyring,
    *,
    complaint_ids: Sequence[int],
    to_staff: Staff,
    actor_id: int | None,
    transfer: Transfer,
    now: datetime | None = None,
) -> Moved:
    """Give these open complaints (handled by someone, about anyone's customer) to `to_staff`,
    with the old handler's pending reminders about them; history on each, one audit entry."""
    assert to_staff.id is not None
    now = now or utcnow()
    rows: list[tuple[int, int, int | None]] = []
    for chunk in _chunks(list(dict.fromkeys(complaint_ids))):
        found = await session.exec(
            select(Complaint.id, Complaint.customer_id, Complaint.handler_id)
            .where(col(Complaint.id).in_(chunk), Complaint.status != ComplaintStatus.closed)
            .with_for_update()
        )
        rows.extend((i, c, h) for i, c, h in found.all() if i is not None and h != to_staff.id)
    if not rows:
        return Moved()
    ids = [complaint_id for complaint_id, _, _ in rows]
    for chunk in _chunks(ids):
        await session.exec(
            update(Complaint)
            .where(col(Complaint.id).in_(chunk))
            .values(handler_id=to_staff.id, version=col(Complaint.version) + 1, updated_at=now)
        )
    by_old: dict[int, list[int]] = defaultdict(list)
    for complaint_id, _, handler in rows:
        if handler is not None:
            by_old[handler].append(complaint_id)
    reminders = await _move_reminders(
        session, subject_type="complaint", subjects_by_old=by_old, to_id=to_staff.id, now=now
    )
    names = await _names(session, {h for _, _, h in rows if h is not None} | {to_staff.id})
    keys: dict[int, bytes] = {}
    for chunk in _chunks(sorted({c for _, c, _ in rows})):
        keys.update(await _data_keys(session, keyring, chunk))
    records = [
        (
            _change(
                entity="complaint",
                entity_id=complaint_id,
                customer_id=customer_id,
                action=transfer,
                changed_by=actor_id,
                changed_at=now,
            ),
            {HANDLER_FIELD: [names.get(handler) if handler else None, names.get(to_staff.id)]},
        )
        for complaint_id, customer_id, handler in rows
    ]
    await _history(session, keys, records)
    await audit.record(
        session,
        action=f"complaint.{transfer}",
        actor_staff_id=actor_id,
        entity="staff",
        entity_id=to_staff.id,
        detail={"to": to_staff.id, "from": sorted(by_old), "complaints": len(ids)},
    )
    return Moved(complaint_ids=tuple(ids), reminders=reminders, from_owners=frozenset(by_old))


async def move_reminders_of(
    session: AsyncSession, *, from_id: int, to_id: int, subject_types: Sequence[str]
) -> int:
    """Re-address every pending reminder of `from_id` about subjects of these types (a
    hand-over's rest: those no moved customer or complaint took along) to `to_id`."""
    moved = 0
    for subject_type in subject_types:
        rows = await session.exec(
            select(Reminder.subject_id).where(
                Reminder.recipient_id == from_id,
                Reminder.status == ReminderStatus.pending,
                Reminder.subject_type == subject_type,
                col(Reminder.subject_id).is_not(None),
            )
        )
        subjects = sorted({s for s in rows.all() if s is not None})
        if subjects:
            moved += await _move_reminders(
                session,
                subject_type=subject_type,
                subjects_by_old={from_id: subjects},
                to_id=to_id,
                now=utcnow(),
            )
    return moved
