"""Editing a customer: at once on draft or rejected records, as a pending change on approved ones.

SPEC section 3: the approved values of an official record stand until a manager approves a
change, so an edit of an approved customer only files a `Review(kind="customer_change")` holding
the sealed field-by-field difference; `apply_change` writes it when the review is approved (and
writes immediate edits too). Every writer of a customer bumps its `version`; an edit names the
version it started from, so of two people editing at once exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import audit, customers, fields, vault
from storage.crypto import Keyring
from storage.errors import NotFound, Refused
from storage.models import (
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)
from storage.permissions import can_edit_customer
from storage.types import jsonable, utcnow

EDITABLE_FIELDS = (*customers.CLEAR_FIELDS, *customers.SEALED_FIELDS)
# columns that cannot be empty: an edit may change them, never clear them (storage.fields)
REQUIRED_FIELDS = fields.required_fields()
# sealed values that have blind indexes, so changing one re-writes them
INDEXED_FIELDS = frozenset(customers.INDEXED_FIELDS)


class ChangedMeanwhile(Refused):
    """Someone else changed the record since this edit began; the edit must start again."""

    def __init__(self) -> None:
        super().__init__("changed_meanwhile")


class EditMode(StrEnum):
    apply = "apply"  # draft / rejected: the change is written at once
    propose = "propose"  # approved: the change waits for a manager


@dataclass(frozen=True)
class EditResult:
    """What an edit did: its mode, the difference {field: [old, new]} and the review filed."""

    mode: EditMode
    changes: dict[str, list[Any]] = field(default_factory=dict)
    review_id: int | None = None


def edit_mode(customer: Customer) -> EditMode:
    """How an edit of this record is handled, or why it cannot be edited now."""
    if customer.status in (RecordStatus.draft, RecordStatus.rejected):
        return EditMode.apply
    if customer.status == RecordStatus.approved:
        return EditMode.propose
    if customer.status == RecordStatus.pending:
        raise Refused("under_review")  # the manager is deciding on exactly these values
    if customer.status == RecordStatus.archived:
        raise Refused("read_only")
    raise NotFound()


def may_edit(actor: Staff, customer: Customer) -> bool:
    """Whoever may see a customer may edit it: the owner, the team's managers, admins."""
    return can_edit_customer(actor, customer)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _normal(value: Any) -> Any:
    return None if _empty(value) else value


def _column_value(field_name: str, value: Any) -> Any:
    if field_name in customers.DATE_FIELDS and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _check_fields(names: Any) -> None:
    unknown = sorted(set(names) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValueError(f"not editable customer fields: {unknown}")


async def current_values(
    session: AsyncSession, *, keyring: Keyring, customer: Customer
) -> dict[str, Any]:
    """Every editable value of the customer, sealed ones opened, in the form edits use."""
    sealed = await customers.sealed_fields(session, keyring, customer)
    values = {f: _normal(jsonable(getattr(customer, f))) for f in customers.CLEAR_FIELDS}
    values.update({f: _normal(sealed.get(f)) for f in customers.SEALED_FIELDS})
    return values


async def pending_changes(
    session: AsyncSession, *, keyring: Keyring, customer: Customer
) -> dict[int, dict[str, list[Any]]]:
    """The customer's changes awaiting a decision: review id → {field: [old, new]}."""
    assert customer.id is not None
    reviews = (
        await session.exec(
            select(Review)
            .where(
                Review.customer_id == customer.id,
                Review.kind == ReviewKind.customer_change,
                Review.status == ReviewStatus.pending,
            )
            .order_by(col(Review.id))
        )
    ).all()
    if not reviews:
        return {}
    key = await vault.data_key(session, keyring, customer.id)
    return {
        r.id or 0: vault.unseal(key, r.changes_sealed, table="reviews", row_id=r.id or 0) or {}
        for r in reviews
    }


async def pending_change_fields(
    session: AsyncSession, *, keyring: Keyring, customer: Customer
) -> set[str]:
    """Fields that already have a change awaiting a decision (they cannot be changed again)."""
    found = await pending_changes(session, keyring=keyring, customer=customer)
    return {name for diff in found.values() for name in diff}


async def edit_customer(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    version: int,
    values: dict[str, Any],
) -> EditResult:
    """Change some fields of a customer, as of `version`: written at once, or proposed.

    Raises Refused (nothing written) when the actor may not, the record's state forbids it, a
    field already has a pending change, or ChangedMeanwhile when the record moved on.
    """
    if not may_edit(actor, customer):
        raise Refused("not_allowed")
    mode = edit_mode(customer)
    if customer.version != version:
        raise ChangedMeanwhile()
    _check_fields(values)
    if any(name in REQUIRED_FIELDS and _empty(v) for name, v in values.items()):
        raise Refused("incomplete")
    old = await current_values(session, keyring=keyring, customer=customer)
    diff = {
        name: [old[name], _normal(value)]
        for name, value in values.items()
        if old[name] != _normal(value)
    }
    if not diff:
        return EditResult(mode)
    if mode == EditMode.apply:
        await apply_change(
            session,
            keyring=keyring,
            customer=customer,
            changes=diff,
            actor_id=actor.id,
            review_id=None,
        )
        return EditResult(mode, diff)
    review = await propose_change(
        session, keyring=keyring, actor=actor, customer=customer, changes=diff, version=version
    )
    return EditResult(mode, diff, review.id)


async def apply_change(
    session: AsyncSession,
    *,
    keyring: Keyring,
    customer: Customer,
    changes: dict[str, Any],
    actor_id: int | None,
    review_id: int | None,
) -> None:
    """Write the new values of `changes` ({field: [old, new]}) with history, indexes and audit.

    Used for immediate edits and by the approval of a pending change (`review_id`). The update
    only lands if the customer still has the version it was read with (else ChangedMeanwhile,
    nothing written). The history records the values actually replaced, which for an approved
    change may differ from the `old` the proposal saw.
    """
    assert customer.id is not None
    _check_fields(changes)
    key = await vault.data_key(session, keyring, customer.id)
    sealed = vault.open_customer(key, customer) or {}
    columns: dict[str, Any] = {}
    history: dict[str, list[Any]] = {}
    for name, pair in changes.items():
        new = _normal(pair[1])
        if name in REQUIRED_FIELDS and new is None:
            raise Refused("incomplete")
        if name in customers.CLEAR_FIELDS:
            before = _normal(jsonable(getattr(customer, name)))
            columns[name] = _column_value(name, new)
        else:
            before = _normal(sealed.get(name))
            if new is None:
                sealed.pop(name, None)
            else:
                sealed[name] = new
        if before != new:
            history[name] = [before, new]
    if not history:
        return
    now = utcnow()
    seq = customer.sealed_seq + 1
    new_sealed = vault.seal_customer(key, sealed, customer_id=customer.id, sealed_seq=seq)
    result = await session.exec(
        update(Customer)
        .where(col(Customer.id) == customer.id, col(Customer.version) == customer.version)
        .values(
            **columns,
            sealed=new_sealed,
            sealed_seq=seq,
            version=customer.version + 1,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        raise ChangedMeanwhile()
    if customer not in session:  # a detached copy: keep it in step with the row
        for name, value in columns.items():
            setattr(customer, name, value)
        customer.sealed, customer.sealed_seq, customer.version, customer.updated_at = (
            new_sealed,
            seq,
            customer.version + 1,
            now,
        )
    if history.keys() & INDEXED_FIELDS:
        await customers.reindex(session, keyring, customer, sealed)
    await vault.add_change(
        session,
        key,
        vault.customer_change(
            customer.id, action="update", changed_by=actor_id, changed_at=now, review_id=review_id
        ),
        history,
    )
    actor = await session.get(Staff, actor_id) if actor_id is not None else None
    await audit.record(
        session,
        action="customer.update",
        actor_staff_id=actor_id,
        actor_telegram_id=actor.telegram_id if actor is not None else None,
        entity="customer",
        entity_id=customer.id,
        detail={
            "customer_no": customer.customer_no,
            "fields": sorted(history),
            "review_id": review_id,
        },
    )


async def propose_change(
    session: AsyncSession,
    *,
    keyring: Keyring,
    actor: Staff,
    customer: Customer,
    changes: dict[str, list[Any]],
    version: int,
) -> Review:
    """File a pending change of an approved customer; its values stay as they are.

    The customer row is locked while checking, so two proposals of the same field at once
    cannot both be filed: the second is refused with `change_pending` and the fields.
    """
    assert customer.id is not None
    _check_fields(changes)
    locked = (
        await session.exec(
            select(Customer)
            .where(Customer.id == customer.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    if locked.version != version:
        raise ChangedMeanwhile()
    if edit_mode(locked) != EditMode.propose:
        raise ChangedMeanwhile()
    overlap = await pending_change_fields(session, keyring=keyring, customer=locked)
    overlap &= set(changes)
    if overlap:
        raise Refused("change_pending", fields=sorted(overlap))
    now = utcnow()
    review = Review(
        kind=ReviewKind.customer_change,
        customer_id=customer.id,
        team_id=locked.team_id,
        submitted_by=actor.id or 0,
        submitted_at=now,
        duplicates=await customers.submission_matches(
            session,
            keyring=keyring,
            customer=locked,
            values={name: pair[1] for name, pair in changes.items()},
        ),
    )
    session.add(review)
    await session.flush()
    assert review.id is not None
    key = await vault.data_key(session, keyring, customer.id)
    review.changes_sealed = vault.seal(key, changes, table="reviews", row_id=review.id)
    session.add(review)
    await vault.add_change(
        session,
        key,
        vault.customer_change(
            customer.id, action="propose", changed_by=actor.id, changed_at=now, review_id=review.id
        ),
        changes,
    )
    await session.flush()
    await audit.record(
        session,
        action="review.submit",
        actor_staff_id=actor.id,
        actor_telegram_id=actor.telegram_id,
        entity="review",
        entity_id=review.id,
        detail={"kind": review.kind, "customer_id": customer.id, "fields": sorted(changes)},
    )
    return review
