"""Customers (客户档案): the only module that writes them, and the rules about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, numbers, vault
from storage.crypto import Keyring
from storage.errors import Refused
from storage.models import (
    BlindIndex,
    ChangeRecord,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    Staff,
)
from storage.permissions import can_create_customer, can_view_customer
from storage.types import utcnow

NUMBER_PREFIX = "KH"

# Columns a customer keeps in clear: what lists, filters and the scheduler need.
CLEAR_FIELDS = (
    "kind",
    "name",
    "short_name",
    "industry",
    "region",
    "parent_org",
    "size",
    "profile",
    "source",
    "website",
    "customer_class",
    "stage",
    "deal_status",
    "credit_status",
    "trade_notes",
    "consent_given",
    "next_followup_on",
)
# Values sealed with the customer's data key (SPEC section 5).
SEALED_FIELDS = (
    "phones",
    "email",
    "wechat",
    "address",
    "invoice_title",
    "bank",
    "account_no",
    "tax_no",
    "billing_address",
    "billing_phone",
    "consent_method",
    "consent_on",
    "consent_note",
)
DATE_FIELDS = {"next_followup_on"}
NAME_MATCH_THRESHOLD = 88


@dataclass(frozen=True)
class Duplicate:
    """An existing customer that looks like the one being entered, and why."""

    customer_id: int
    customer_no: str
    name: str
    owner_name: str
    reason: str  # phone / tax_no / name


def _clear_value(field: str, value: Any) -> Any:
    if field in DATE_FIELDS and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


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
    entries = [("phone", p) for p in sealed.get("phones") or []]
    if sealed.get("billing_phone"):
        entries.append(("phone", sealed["billing_phone"]))
    if sealed.get("tax_no"):
        entries.append(("tax_no", sealed["tax_no"]))
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
    session: AsyncSession, *, keyring: Keyring, actor: Staff, values: dict[str, Any]
) -> Customer:
    """Enter a new customer as `pending`, with its number, data key, history and review."""
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
        **{f: _clear_value(f, values[f]) for f in CLEAR_FIELDS if values.get(f) is not None},
    )
    session.add(customer)
    await session.flush()
    assert customer.id is not None
    key = await vault.create_data_key(session, keyring, customer.id)
    sealed = {f: values[f] for f in SEALED_FIELDS if values.get(f) not in (None, "", [])}
    customer.sealed_seq = 1
    customer.sealed = vault.seal_customer(key, sealed, customer_id=customer.id, sealed_seq=1)
    session.add(customer)
    await reindex(session, keyring, customer, sealed)
    diff = {f: [None, _jsonable(v)] for f, v in values.items() if v not in (None, "", [])}
    await vault.add_change(
        session,
        key,
        ChangeRecord(
            entity="customer",
            entity_id=customer.id,
            customer_id=customer.id,
            action="create",
            changed_by=actor.id,
            changed_at=now,
        ),
        diff,
    )
    review = Review(
        kind=ReviewKind.customer_new,
        customer_id=customer.id,
        team_id=customer.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
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


async def duplicates(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    phones: list[str] | None = None,
    tax_no: str | None = None,
    name: str | None = None,
) -> list[Duplicate]:
    """Existing customers with the same phone or tax number, or a very similar name in the team."""
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
        candidates = await session.exec(
            select(Customer.id, Customer.name, Customer.short_name).where(
                Customer.team_id == actor.team_id,
                col(Customer.status) != RecordStatus.destroyed,
            )
        )
        choices = {}
        for cid, cname, short in candidates.all():
            choices[(cid, 0)] = cname
            if short:
                choices[(cid, 1)] = short
        for _match, _score, (cid, _) in process.extract(
            name, choices, scorer=fuzz.WRatio, score_cutoff=NAME_MATCH_THRESHOLD, limit=5
        ):
            found.setdefault(cid, "name")
    if not found:
        return []
    rows = await session.exec(
        select(Customer, Staff.display_name)
        .join(Staff, col(Staff.id) == Customer.owner_id)
        .where(col(Customer.id).in_(list(found)), col(Customer.status) != RecordStatus.destroyed)
        .order_by(col(Customer.id))
    )
    return [
        Duplicate(c.id or 0, c.customer_no, c.name, owner, found[c.id or 0])
        for c, owner in rows.all()
    ]


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
    await audit.record(
        session,
        action="access.denied",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="customer",
        entity_id=customer_id,
        detail={"purpose": purpose, "exists": customer is not None},
    )
    return None
