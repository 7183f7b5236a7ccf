"""导入: customers entered from a spreadsheet, the rules about it, and its all-or-nothing write.

The rows are read and checked above this floor (conversations/importing.py, with /new's own
steps); here is what storage decides: who may import, whose customers they become
(storage.permissions `can_import`, `can_import_for`), that an import is confirmed once, and
the write itself: every accepted row a customer, numbered, sealed under its own data key,
blind-indexed, with its history line, its review (unless an admin approves directly) and its
audit entry, in the caller's one transaction, in bulk (10,000 rows are a few statements per
`CHUNK`).

An import between its dry run and its confirmation keeps no personal data: the `Import` row
holds the file's Telegram id, size, checksum and counts; the file is fetched again to confirm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import func, insert, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, numbers, permissions, vault
from storage.crypto import Keyring
from storage.customers import (
    INDEXED_FIELDS,
    NUMBER_PREFIX,
    CustomerCreate,
    Match,
    _each,
    encode_matches,
)
from storage.db import write_soon
from storage.errors import NotFound, Refused
from storage.models import (
    BlindIndex,
    ChangeRecord,
    Customer,
    DataKey,
    Import,
    ImportStatus,
    RecordStatus,
    Review,
    ReviewKind,
    Staff,
    Team,
)
from storage.types import jsonable

CHUNK = 500  # rows per bulk statement: far below SQLite's and asyncpg's parameter limits
HISTORY_ACTION = "import"  # the history line of an imported customer (card.history.action.import)
OPEN_STATUSES = (ImportStatus.awaiting, ImportStatus.checked)
OPEN_FOR = timedelta(days=1)  # how long after /import (or its dry run) a document is its file


@dataclass(frozen=True)
class AcceptedRow:
    """A checked row ready to become a customer: its values, its owner, the archive's customers
    it looked like (for its review), and its row number in the file."""

    row: int
    values: CustomerCreate
    owner: Staff
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Deciders:
    """Who decides the pending customers an import gave one team (for their notice)."""

    team_id: int | None
    team_name: str | None
    customers: int
    people: tuple[Staff, ...]


@dataclass(frozen=True)
class Imported:
    """What a confirmed import wrote."""

    import_id: int
    customer_ids: tuple[int, ...]
    first_number: str | None
    last_number: str | None
    approved: bool
    deciders: tuple[Deciders, ...] = field(default=())

    @property
    def customers(self) -> int:
        return len(self.customer_ids)


def digest_of(rows: Sequence[tuple[int, int | None]]) -> str:
    """What a dry run accepted, as a checksum over (row number, owner id) pairs: a
    confirmation must accept the same rows for the same owners, or it writes nothing."""
    text_ = ";".join(f"{row}:{owner or 0}" for row, owner in sorted(rows))
    return hashlib.sha256(text_.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the import's own row


def _refuse_unless_importer(actor: Staff) -> None:
    if not permissions.imports_at_all(actor):
        raise Refused("not_allowed")


async def await_file(session: AsyncSession, *, actor: Staff, now: datetime) -> Import:
    """/import: the person's one open import, waiting for its file (an earlier open one,
    checked or not, is cancelled: its buttons go stale)."""
    _refuse_unless_importer(actor)
    await session.exec(
        update(Import)
        .where(col(Import.staff_id) == actor.id, col(Import.status).in_(OPEN_STATUSES))
        .values(status=ImportStatus.cancelled, version=Import.version + 1, updated_at=now)
    )
    opened = Import(staff_id=actor.id or 0, status=ImportStatus.awaiting, created_at=now)
    opened.updated_at = now
    session.add(opened)
    await session.flush()
    await audit.record(
        session,
        action="import.start",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="import",
        entity_id=opened.id,
    )
    return opened


async def open_import(session: AsyncSession, *, actor: Staff, now: datetime) -> Import | None:
    """The person's open import (awaiting a file or checked) of the last `OPEN_FOR`, if any: a
    document they send then is that import's file (an older /import no longer takes one)."""
    if not permissions.imports_at_all(actor):
        return None
    return (
        await session.exec(
            select(Import)
            .where(
                col(Import.staff_id) == actor.id,
                col(Import.status).in_(OPEN_STATUSES),
                col(Import.updated_at) >= now - OPEN_FOR,
            )
            .order_by(col(Import.id).desc())
            .limit(1)
        )
    ).first()


async def own_import(session: AsyncSession, *, actor: Staff, import_id: int) -> Import:
    """The actor's own import (button data is a claim): NotFound for anyone else's, and the
    attempt audited (in a `reading` unit, right after it)."""
    found = await session.get(Import, import_id)
    if found is None or found.staff_id != actor.id or not permissions.imports_at_all(actor):
        await write_soon(
            session,
            partial(
                audit.record,
                action="access.denied",
                actor_staff_id=actor.id,
                actor_telegram_id=actor.telegram_id,
                entity="import",
                entity_id=import_id,
                detail={"purpose": "import", "exists": found is not None},
            ),
        )
        raise NotFound()
    return found


async def record_check(
    session: AsyncSession,
    *,
    actor: Staff,
    import_id: int,
    file_id: str,
    file_size: int,
    checksum: str,
    rows: int,
    accepted: int,
    rejected: int,
    accepted_digest: str,
    now: datetime,
) -> int:
    """A dry run's outcome (file and counts, no values) on the open import; returns the new
    version that the report's buttons carry (an older report's buttons go stale)."""
    found = await own_import(session, actor=actor, import_id=import_id)
    version = found.version
    result = await session.exec(
        update(Import)
        .where(
            col(Import.id) == found.id,
            col(Import.status).in_(OPEN_STATUSES),
            col(Import.version) == version,
        )
        .values(
            status=ImportStatus.checked,
            file_id=file_id,
            file_size=file_size,
            checksum=checksum,
            rows=rows,
            accepted=accepted,
            rejected=rejected,
            accepted_digest=accepted_digest,
            version=Import.version + 1,
            updated_at=now,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Refused("stale")
    await audit.record(
        session,
        action="import.check",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="import",
        entity_id=found.id,
        detail={"rows": rows, "accepted": accepted, "rejected": rejected},
    )
    return version + 1


async def cancel(session: AsyncSession, *, actor: Staff, import_id: int, version: int) -> bool:
    """Drop an open import; False if it was no longer open in that version."""
    await own_import(session, actor=actor, import_id=import_id)
    result = await session.exec(
        update(Import)
        .where(
            col(Import.id) == import_id,
            col(Import.status).in_(OPEN_STATUSES),
            col(Import.version) == version,
        )
        .values(status=ImportStatus.cancelled, version=Import.version + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# owners


async def owner_choices(session: AsyncSession, *, actor: Staff) -> list[Staff]:
    """Whom the importer may make the owner of imported customers, by team then name."""
    if not permissions.imports_at_all(actor):
        return []
    query = select(Staff).where(
        col(Staff.active).is_(True),
        col(Staff.role) != "admin",
        col(Staff.team_id).is_not(None),
    )
    if not permissions.is_admin(actor):
        query = query.where(col(Staff.team_id).in_(sorted(permissions.teams_of(actor))))
    rows = await session.exec(query.order_by(col(Staff.team_id), col(Staff.display_name)))
    return [s for s in rows.all() if permissions.can_import_for(actor, s)]


async def staff_by_telegram_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Staff]:
    """Staff named in an owner column, by Telegram id."""
    found: dict[int, Staff] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), CHUNK):
        rows = await session.exec(
            select(Staff).where(col(Staff.telegram_id).in_(wanted[start : start + CHUNK]))
        )
        found.update({s.telegram_id: s for s in rows.all()})
    return found


# ---------------------------------------------------------------------------------------------
# the write


def _defaults(model: Any) -> dict[str, Any]:
    """A row's columns with the model's plain defaults (building thousands of SQLModel objects
    only to dump them costs seconds: tests/bench/import_rows.py)."""
    columns = {c.name for c in model.__table__.columns} - {"id"}
    found = {}
    for name in columns:
        info = model.model_fields.get(name)
        default = getattr(info, "default", None)
        found[name] = None if default is PydanticUndefined else default
    return found


_CUSTOMER_DEFAULTS = _defaults(Customer)
_REVIEW_DEFAULTS = _defaults(Review)


async def _new_ids(session: AsyncSession, table: str, count: int) -> list[int]:
    """Ids for `count` new rows taken before they are written, so what is sealed to an id is
    written with it in one statement per chunk (storage.ownership does the same for history)."""
    assert table in ("customers", "change_records")
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.exec(
            text(  # type: ignore[call-overload]
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
                " FROM generate_series(1, :count)"
            ).bindparams(count=count)
        )
        return [int(row[0]) for row in rows.all()]
    # SQLite: the unit of work holds the write lock (BEGIN IMMEDIATE): nobody writes meanwhile
    model = Customer if table == "customers" else ChangeRecord
    top = (await session.exec(select(func.max(model.id)))).one()
    first = int(top or 0) + 1
    return list(range(first, first + count))


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    for start in range(0, len(rows), CHUNK):
        await session.exec(insert(table), params=rows[start : start + CHUNK])  # type: ignore[call-overload]


async def _write_chunk(
    session: AsyncSession,
    keyring: Keyring,
    *,
    actor: Staff,
    import_id: int,
    rows: Sequence[AcceptedRow],
    numbers_: Sequence[str],
    approve: bool,
    now: datetime,
) -> tuple[list[int], list[dict[str, Any]]]:
    """One chunk of rows written as customers; returns their ids and their audit entries."""
    ids = await _new_ids(session, "customers", len(rows))
    change_ids = await _new_ids(session, "change_records", len(rows))
    status = RecordStatus.approved if approve else RecordStatus.pending
    customers_: list[dict[str, Any]] = []
    keys_: list[dict[str, Any]] = []
    indexes: list[dict[str, Any]] = []
    reviews_: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for cid, change_id, number, accepted in zip(ids, change_ids, numbers_, rows, strict=True):
        owner = accepted.owner
        key = keyring.new_data_key()
        kid, wrapped = keyring.wrap(key, customer_id=cid)
        sealed = accepted.values.sealed()
        customers_.append(
            {
                **_CUSTOMER_DEFAULTS,
                **accepted.values.clear(),
                "id": cid,
                "customer_no": number,
                "owner_id": owner.id or 0,
                "team_id": owner.team_id,
                "status": status,
                "submitted_at": now,
                "approved_at": now if approve else None,
                "last_checked_at": now if approve else None,
                "created_at": now,
                "updated_at": now,
                "sealed_seq": 1,
                "sealed": vault.seal_customer(key, sealed, customer_id=cid, sealed_seq=1),
            }
        )
        keys_.append(
            {
                "customer_id": cid,
                "kek_id": kid,
                "wrapped": wrapped,
                "erased_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        for name, kind in INDEXED_FIELDS.items():
            for value in _each(sealed.get(name)):
                indexes.append(
                    {
                        "kind": kind,
                        "digest": keyring.blind_index(kind, value),
                        "kek_id": keyring.current.kid,
                        "customer_id": cid,
                        "key_person_id": None,
                    }
                )
        if not approve:
            reviews_.append(
                {
                    **_REVIEW_DEFAULTS,
                    "kind": ReviewKind.customer_new,
                    "customer_id": cid,
                    "team_id": owner.team_id,
                    "submitted_by": actor.id or 0,
                    "submitted_at": now,
                    "duplicates": encode_matches(list(accepted.matches)),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        diff = {f: [None, jsonable(v)] for f, v in accepted.values.filled().items()}
        if approve:
            diff["status"] = [None, RecordStatus.approved]
        history.append(
            {
                "id": change_id,
                "entity": "customer",
                "entity_id": cid,
                "customer_id": cid,
                "action": HISTORY_ACTION,
                "changed_by": actor.id,
                "changed_at": now,
                "review_id": None,
                "diff_sealed": vault.seal_change_row(
                    key,
                    diff,
                    record_id=change_id,
                    entity="customer",
                    entity_id=cid,
                    action=HISTORY_ACTION,
                ),
            }
        )
        entries.append(
            {
                "action": "customer.import",
                "actor_staff_id": actor.id,
                "actor_telegram_id": actor.telegram_id,
                "entity": "customer",
                "entity_id": cid,
                "detail": {
                    "customer_no": number,
                    "fields": sorted(diff),
                    "import_id": import_id,
                    "row": accepted.row,
                    "owner": owner.id,
                    "status": status,
                },
            }
        )
    await _insert(session, Customer, customers_)
    await _insert(session, DataKey, keys_)
    await _insert(session, BlindIndex, indexes)
    await _insert(session, Review, reviews_)
    await _insert(session, ChangeRecord, history)
    return ids, entries


async def _deciders(
    session: AsyncSession, *, actor: Staff, by_team: dict[int | None, int]
) -> tuple[Deciders, ...]:
    """Per team, who decides its new pending customers: its active managers but the importer,
    else the admins but the importer (storage.reviews.route's people)."""
    told = []
    for team_id, count in sorted(by_team.items(), key=lambda item: item[0] or 0):
        people: list[Staff] = []
        if team_id is not None:
            people = list(
                (
                    await session.exec(
                        select(Staff)
                        .where(*permissions.managers_of(team_id), Staff.id != actor.id)
                        .order_by(col(Staff.id))
                    )
                ).all()
            )
        if not people:
            people = list(
                (
                    await session.exec(
                        select(Staff)
                        .where(*permissions.admins(), Staff.id != actor.id)
                        .order_by(col(Staff.id))
                    )
                ).all()
            )
        team = await session.get(Team, team_id) if team_id is not None else None
        told.append(Deciders(team_id, team.name if team else None, count, tuple(people)))
    return tuple(told)


async def confirm(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    import_id: int,
    version: int,
    rows: Sequence[AcceptedRow],
    approve: bool,
    now: datetime,
) -> Imported:
    """Write the accepted rows as customers, once, all or nothing (in the caller's unit of
    work: a failure anywhere rolls every row back, and the import stays open).

    Refused: not_found (not the actor's), not_allowed (direct approval by a non-admin, or an
    owner outside the importer's teams), already_imported / stale (confirmed or re-checked
    meanwhile: of two presses at once exactly one writes), nothing_to_import.
    """
    found = await own_import(session, actor=actor, import_id=import_id)
    if approve and not permissions.is_admin(actor):
        raise Refused("not_allowed")
    if not rows:
        raise Refused("nothing_to_import")
    for accepted in rows:
        if not permissions.can_import_for(actor, accepted.owner):
            raise Refused("not_allowed")
    taken = await session.exec(
        update(Import)
        .where(
            col(Import.id) == found.id,
            col(Import.status) == ImportStatus.checked,
            col(Import.version) == version,
        )
        .values(
            status=ImportStatus.done,
            customers=len(rows),
            finished_at=now,
            version=Import.version + 1,
            updated_at=now,
        )
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(found)
        raise Refused("already_imported" if found.status == ImportStatus.done else "stale")
    taken_numbers = await numbers.next_values(session, f"{NUMBER_PREFIX}:{now.year}", len(rows))
    all_numbers = [numbers.number_of(NUMBER_PREFIX, now.year, v) for v in taken_numbers]
    customer_ids: list[int] = []
    entries: list[dict[str, Any]] = []
    for start in range(0, len(rows), CHUNK):
        ids, audited = await _write_chunk(
            session,
            keyring,
            actor=actor,
            import_id=found.id or 0,
            rows=rows[start : start + CHUNK],
            numbers_=all_numbers[start : start + CHUNK],
            approve=approve,
            now=now,
        )
        customer_ids.extend(ids)
        entries.extend(audited)
    entries.append(
        {
            "action": "import.confirm",
            "actor_staff_id": actor.id,
            "actor_telegram_id": actor.telegram_id,
            "entity": "import",
            "entity_id": found.id,
            "detail": {
                "customers": len(rows),
                "approved": approve,
                "first": all_numbers[0],
                "last": all_numbers[-1],
            },
        }
    )
    await audit.record_many(session, entries)
    by_team: dict[int | None, int] = {}
    for accepted in rows:
        by_team[accepted.owner.team_id] = by_team.get(accepted.owner.team_id, 0) + 1
    deciders = () if approve else await _deciders(session, actor=actor, by_team=by_team)
    return Imported(
        import_id=found.id or 0,
        customer_ids=tuple(customer_ids),
        first_number=all_numbers[0],
        last_number=all_numbers[-1],
        approved=approve,
        deciders=deciders,
    )
