"""Customers (客户档案): the only module that writes them, and the rules about them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, duplicate_names, fields, names, numbers, vault
from storage.crypto import Keyring
from storage.db import write_soon
from storage.errors import Refused
from storage.models import (
    BlindIndex,
    Customer,
    DuplicateCheckCount,
    RecordStatus,
    Review,
    ReviewKind,
    Staff,
    Team,
)
from storage.permissions import can_create_customer, can_view_customer
from storage.types import jsonable, utcnow

NUMBER_PREFIX = "KH"

# the catalogue's lists (storage.fields): columns kept in clear, values sealed with the
# customer's data key (SPEC section 5), calendar days, blind-indexed values
CLEAR_FIELDS = fields.clear_fields()
SEALED_FIELDS = fields.sealed_fields()
DATE_FIELDS = fields.date_fields()
INDEXED_FIELDS = fields.indexed_fields()


@dataclass(frozen=True)
class CustomerCreate:
    """A new customer's values, checked against the catalogue (storage.fields): every name is a
    customer field, so an answer no field declares is refused, never silently dropped."""

    values: Mapping[str, Any]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.values) - set(fields.names(fields.CUSTOMER)))
        if unknown:
            raise ValueError(f"not customer fields: {unknown}")

    @classmethod
    def of(cls, values: CustomerCreate | Mapping[str, Any]) -> CustomerCreate:
        return values if isinstance(values, CustomerCreate) else cls(dict(values))

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def filled(self) -> dict[str, Any]:
        """The values given, in the form a history and the sealed blob keep them."""
        return {f: v for f, v in self.values.items() if v not in (None, "", [])}

    def clear(self) -> dict[str, Any]:
        """The clear columns that are set, dates as dates."""
        return {
            f: _clear_value(f, self.values[f])
            for f in CLEAR_FIELDS
            if self.values.get(f) is not None
        }

    def sealed(self) -> dict[str, Any]:
        return {f: v for f, v in self.filled().items() if f in SEALED_FIELDS}


@dataclass(frozen=True)
class Match:
    """An existing customer that looks like the one being entered, and why (no details)."""

    customer_id: int
    reason: str  # phone / tax_no / name


@dataclass(frozen=True)
class Duplicate:
    """A match as one viewer may learn of it: the customer's number, name and owner only if the
    viewer may see that customer; otherwise whom to ask (`ask`: manager / team / admin)."""

    reason: str  # phone / tax_no / name
    shown: bool
    customer_no: str | None = None
    name: str | None = None
    owner_name: str | None = None
    ask: str | None = None
    team_name: str | None = None  # the team to ask, when ask == "team"


@dataclass(frozen=True)
class DuplicateCheck:
    """What a duplicate check tells the person entering a customer."""

    duplicates: tuple[Duplicate, ...] = ()
    capped: bool = False  # the day's DUPLICATE_CHECKS_PER_DAY was used up: nothing looked up


def _clear_value(field: str, value: Any) -> Any:
    if field in DATE_FIELDS and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _each(value: Any) -> list[Any]:
    """A value as a list of its parts: phones are several, a tax number one."""
    if value in (None, "", []):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


async def reindex(
    session: AsyncSession, keyring: Keyring, customer: Customer, sealed: dict[str, Any]
) -> None:
    """(Re)write the blind indexes of a customer's phones and tax number, under the newest key."""
    assert customer.id is not None
    old = await session.exec(
        select(BlindIndex).where(
            BlindIndex.customer_id == customer.id, col(BlindIndex.key_person_id).is_(None)
        )
    )
    for row in old.all():
        await session.delete(row)
    entries = [(kind, v) for name, kind in INDEXED_FIELDS.items() for v in _each(sealed.get(name))]
    for kind, value in entries:
        session.add(
            BlindIndex(
                kind=kind,
                digest=keyring.blind_index(kind, value),
                kek_id=keyring.current.kid,
                customer_id=customer.id,
            )
        )


async def create_customer(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    values: CustomerCreate | Mapping[str, Any],
) -> Customer:
    """Enter a new customer as `pending`, with its number, data key, history and review."""
    values = CustomerCreate.of(values)
    if not can_create_customer(actor):
        raise Refused("not_allowed")
    if not values.get("name") or not values.get("kind"):
        raise Refused("incomplete")
    now = utcnow()
    customer = Customer(
        customer_no=await numbers.next_number(session, NUMBER_PREFIX, now.year),
        owner_id=actor.id or 0,
        team_id=actor.team_id,
        status=RecordStatus.pending,
        submitted_at=now,
        **values.clear(),
    )
    session.add(customer)
    await session.flush()
    assert customer.id is not None
    key = await vault.create_data_key(session, keyring, customer.id)
    sealed = values.sealed()
    customer.sealed_seq = 1
    customer.sealed = vault.seal_customer(key, sealed, customer_id=customer.id, sealed_seq=1)
    session.add(customer)
    await reindex(session, keyring, customer, sealed)
    diff = {f: [None, jsonable(v)] for f, v in values.filled().items()}
    await vault.add_change(
        session,
        key,
        vault.customer_change(customer.id, action="create", changed_by=actor.id, changed_at=now),
        diff,
    )
    review = Review(
        kind=ReviewKind.customer_new,
        customer_id=customer.id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        duplicates=await submission_matches(
            session, keyring=keyring, customer=customer, values=values
        ),
    )
    session.add(review)
    await session.flush()
    await audit.record(
        session,
        action="customer.create",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer.id,
        detail={"customer_no": customer.customer_no, "fields": sorted(diff)},
    )
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={"kind": review.kind, "customer_id": customer.id},
    )
    return customer


async def sealed_fields(session: AsyncSession, keyring: Keyring, customer: Customer) -> dict:
    """The customer's sensitive values in clear; callers audit views of them."""
    assert customer.id is not None
    key = await vault.data_key(session, keyring, customer.id)
    return vault.open_customer(key, customer) or {}


async def matches(
    session: AsyncSession,
    *,
    keyring: Keyring,
    team_id: int | None,
    phones: list[str] | None = None,
    tax_no: str | None = None,
    name: str | None = None,
    exclude: int | None = None,
) -> list[Match]:
    """Existing customers with the same phone or tax number, or a very similar name in the team.

    Ids and reasons only, neither capped nor audited: for the server's own use (the duplicates
    a review shows its deciders). What a person is told goes through `duplicates`.
    """
    found: dict[int, str] = {}
    for kind, values in (("phone", phones or []), ("tax_no", [tax_no] if tax_no else [])):
        digests = [d for v in values for d in keyring.blind_indexes(kind, v)]
        if digests:
            rows = await session.exec(
                select(BlindIndex.customer_id).where(
                    BlindIndex.kind == kind, col(BlindIndex.digest).in_(digests)
                )
            )
            for customer_id in rows.all():
                found.setdefault(customer_id, kind)
    if name:
        team = await duplicate_names.team_names(session, team_id)
        for cid in team.similar_to(name, limit=5):
            found.setdefault(cid, "name")
    found.pop(exclude or 0, None)
    if not found:
        return []
    current = await _current(session, sorted(found))
    return [
        Match(cid, reason)
        for cid, reason in sorted(found.items())
        if cid in current and (reason != "name" or _still_alike(current[cid], team_id, name or ""))
    ]


async def _current(
    session: AsyncSession, ids: list[int], chunk: int = 500
) -> dict[int, tuple[int | None, str, str | None]]:
    """Team, name and short name of those customers not destroyed: the in-process names only
    propose ids, the database decides."""
    current: dict[int, tuple[int | None, str, str | None]] = {}
    for start in range(0, len(ids), chunk):
        rows = await session.exec(
            select(Customer.id, Customer.team_id, Customer.name, Customer.short_name).where(
                col(Customer.id).in_(ids[start : start + chunk]),
                col(Customer.status) != RecordStatus.destroyed,
            )
        )
        for cid, team_id, cname, short in rows.all():
            if cid is not None:
                current[cid] = (team_id, cname, short)
    return current


def _still_alike(row: tuple[int | None, str, str | None], team_id: int | None, name: str) -> bool:
    """Whether a customer proposed for its name is still in the team and still named alike."""
    row_team, cname, short = row
    if row_team != team_id:
        return False
    return bool(names.NameIndex.of([(0, cname), *([(0, short)] if short else [])]).similar_to(name))


@dataclass(frozen=True)
class Query:
    """What one customer being entered is looked up by (`matches`' arguments, for many)."""

    team_id: int | None
    phones: tuple[str, ...] = ()
    tax_no: str | None = None
    name: str | None = None


async def matches_of_many(
    session: AsyncSession, *, keyring: Keyring, queries: list[Query], chunk: int = 500
) -> list[list[Match]]:
    """`matches` for many customers at once (an import of thousands of rows): the same blind
    indexes, the same name scorer and threshold within each one's team, the same reasons in the
    same order of preference (phone, tax number, name) and the same destroyed ones left out;
    only the queries are batched (a chunk of digests per IN, each team's names read once).
    Every match is returned, not only `matches`' five best."""
    found: list[dict[int, str]] = [{} for _ in queries]
    for kind, values_of in (
        ("phone", lambda q: list(q.phones)),
        ("tax_no", lambda q: [q.tax_no] if q.tax_no else []),
    ):
        wanted: dict[str, list[int]] = {}
        for position, query in enumerate(queries):
            for value in values_of(query):
                for digest in keyring.blind_indexes(kind, value):
                    wanted.setdefault(digest, []).append(position)
        digests = list(wanted)
        for start in range(0, len(digests), chunk):
            rows = await session.exec(
                select(BlindIndex.digest, BlindIndex.customer_id).where(
                    BlindIndex.kind == kind,
                    col(BlindIndex.digest).in_(digests[start : start + chunk]),
                )
            )
            for digest, customer_id in rows.all():
                for position in wanted[digest]:
                    found[position].setdefault(customer_id, kind)
    by_team: dict[int | None, list[int]] = {}
    for position, query in enumerate(queries):
        if query.name:
            by_team.setdefault(query.team_id, []).append(position)
    for team_id, positions in by_team.items():
        team = await duplicate_names.team_names(session, team_id)
        for position in positions:
            for cid in team.similar_to(queries[position].name or ""):
                found[position].setdefault(cid, "name")
    current = await _current(session, sorted({cid for each in found for cid in each}), chunk)
    return [
        [
            Match(cid, reason)
            for cid, reason in sorted(each.items())
            if cid in current
            and (reason != "name" or _still_alike(current[cid], query.team_id, query.name or ""))
        ]
        for each, query in zip(found, queries, strict=True)
    ]


async def describe(
    session: AsyncSession,
    found: list[Match],
    *,
    may_see: Callable[[Customer], bool],
    team_id: int | None,
) -> list[tuple[Match, Duplicate]]:
    """Each match as a viewer may learn of it: details if `may_see` the customer, else whom to
    ask, relative to the viewer's team (`team_id`). Customers destroyed meanwhile are left out."""
    if not found:
        return []
    rows = await session.exec(
        select(Customer, Staff.display_name, Team.name)
        .join(Staff, col(Staff.id) == Customer.owner_id)
        .join(Team, col(Team.id) == Customer.team_id, isouter=True)
        .where(
            col(Customer.id).in_([m.customer_id for m in found]),
            col(Customer.status) != RecordStatus.destroyed,
        )
    )
    by_id = {c.id: (c, owner, team) for c, owner, team in rows.all()}
    described = []
    for match in found:
        if match.customer_id not in by_id:
            continue
        customer, owner, team = by_id[match.customer_id]
        if may_see(customer):
            duplicate = Duplicate(match.reason, True, customer.customer_no, customer.name, owner)
        elif customer.team_id is not None and customer.team_id == team_id:
            duplicate = Duplicate(match.reason, False, ask="manager")
        elif customer.team_id is not None:
            duplicate = Duplicate(match.reason, False, ask="team", team_name=team)
        else:
            duplicate = Duplicate(match.reason, False, ask="admin")
        described.append((match, duplicate))
    return described


async def _count_look_up(session: AsyncSession, actor: Staff, day: date) -> int:
    """Count one more look-up of the actor's day, atomically; returns the day's count so far.

    The upsert is the check's first statement, so the transaction takes SQLite's write lock
    before it reads anything (no lock upgrade to fail), and PostgreSQL's row lock serialises
    two look-ups of the same person at once.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(DuplicateCheckCount)
        .values(staff_id=actor.id, day=day, count=1)
        .on_conflict_do_update(
            index_elements=["staff_id", "day"],
            set_={"count": DuplicateCheckCount.__table__.c.count + 1},  # type: ignore[attr-defined]
        )
        .returning(DuplicateCheckCount.__table__.c.count)  # type: ignore[attr-defined]
    )
    return int((await session.exec(statement)).scalar_one())


async def take_look_up(
    session: AsyncSession, *, actor: Staff, today: date, daily_limit: int, purpose: str
) -> bool:
    """Count one duplicate look-up of the actor's day; False once `daily_limit` is used up
    (nothing may be looked up then; the first refusal of a day is audited)."""
    used = await _count_look_up(session, actor, today)
    if used > daily_limit:
        if used == daily_limit + 1:  # once a day is enough to see someone ran into the cap
            await audit.record(
                session,
                action="customer.duplicates_capped",
                actor_staff_id=actor.id,
                actor_telegram_id=actor.telegram_id,
                detail={"limit": daily_limit, "purpose": purpose},
            )
        return False
    return True


async def duplicates(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    today: date,
    daily_limit: int,
    purpose: str,
    phones: list[str] | None = None,
    tax_no: str | None = None,
    name: str | None = None,
    exclude: int | None = None,
) -> DuplicateCheck:
    """The duplicate warning for someone entering a customer (SPEC section 6), as they may see it.

    Details only of customers the actor may see (SPEC section 4); of any other, only that it
    exists and whom to ask. Every look-up counts toward the actor's `daily_limit` of `today`
    (Back and answering again count each time): once reached, nothing is looked up. Every match
    is audited, with whether its details were shown.
    """
    if not (phones or tax_no or name):
        return DuplicateCheck()
    if not await take_look_up(
        session, actor=actor, today=today, daily_limit=daily_limit, purpose=purpose
    ):
        return DuplicateCheck(capped=True)
    found = await matches(
        session,
        keyring=keyring,
        team_id=actor.team_id,
        phones=phones,
        tax_no=tax_no,
        name=name,
        exclude=exclude,
    )
    described = await describe(
        session, found, may_see=lambda c: can_view_customer(actor, c), team_id=actor.team_id
    )
    await audit.record_many(
        session,
        [
            {
                "action": "customer.duplicate",
                "actor_staff_id": actor.id,
                "actor_telegram_id": actor.telegram_id,
                "entity": "customer",
                "entity_id": match.customer_id,
                "detail": {"reason": match.reason, "shown": duplicate.shown, "purpose": purpose},
            }
            for match, duplicate in described
        ],
    )
    return DuplicateCheck(tuple(d for _m, d in described))


def encode_matches(found: list[Match]) -> str | None:
    """A review's duplicates as stored (`Review.duplicates`)."""
    return json.dumps([[m.customer_id, m.reason] for m in found]) if found else None


def decode_matches(stored: str | None) -> list[Match]:
    if not stored:
        return []
    return [Match(int(cid), str(reason)) for cid, reason in json.loads(stored)]


async def submission_matches(
    session: AsyncSession,
    *,
    keyring: Keyring,
    customer: Customer,
    values: CustomerCreate | Mapping[str, Any],
) -> str | None:
    """The duplicates of a submission, for its review: looked up by the server, so neither
    capped nor audited (nobody is shown them until a decider opens the card)."""
    values = CustomerCreate.of(values)
    queries: dict[str, list[Any]] = {}
    for name, query in fields.duplicate_queries().items():
        queries.setdefault(query, []).extend(_each(values.get(name)))
    found = await matches(
        session,
        keyring=keyring,
        team_id=customer.team_id,
        phones=queries.get("phones"),
        tax_no=next(iter(queries.get("tax_no") or []), None),
        name=next(iter(queries.get("name") or []), None),
        exclude=customer.id,
    )
    return encode_matches(found)


async def visible_customer(
    session: AsyncSession, *, actor: Staff, customer_id: int, purpose: str
) -> Customer | None:
    """The customer if the actor may see it; otherwise None, and the attempt is audited.

    Button data is a claim: every handler that receives a customer id goes through here.
    """
    customer = await session.get(Customer, customer_id)
    visible = customer is not None and can_view_customer(actor, customer)
    if visible and customer is not None and customer.status != RecordStatus.destroyed:
        return customer
    # in a `reading` unit the refusal is audited right after it, in a unit that may write
    await write_soon(
        session,
        partial(
            audit.record,
            action="access.denied",
            actor_staff_id=actor.id,
            actor_telegram_id=actor.telegram_id,
            entity="customer",
            entity_id=customer_id,
            detail={"purpose": purpose, "exists": customer is not None},
        ),
    )
    return None
