"""Per-customer data keys: create, open and erase; sealing values bound to their record.

A sealed value opens only in its own place: `seal`/`unseal` bind it to table and row. Change
records and a customer's blob are bound tighter (`_BOUND` tokens), since several of them share
one customer's data key: a change record to its own id, entity and action (so one record's
difference cannot be shown as another's), a customer's blob to its `sealed_seq`, bumped with
every sealed write (so an older blob of the same customer put back fails to open). Tokens
written before (crypto's plain format) still open with the old binding; rotate-keys re-seals
them in the bound format (`reseal_legacy` in storage.rotation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring, open_with, seal_with
from storage.models import ChangeRecord, Customer, DataKey
from storage.types import utcnow


class DataErased(DecryptionError):
    """The customer's data key was erased: its personal data is gone for good."""


async def create_data_key(session: AsyncSession, keyring: Keyring, customer_id: int) -> bytes:
    data_key = keyring.new_data_key()
    kid, wrapped = keyring.wrap(data_key, customer_id=customer_id)
    session.add(DataKey(customer_id=customer_id, kek_id=kid, wrapped=wrapped))
    await session.flush()
    return data_key


async def data_key(session: AsyncSession, keyring: Keyring, customer_id: int) -> bytes:
    row = (await session.exec(select(DataKey).where(DataKey.customer_id == customer_id))).first()
    if row is None or row.wrapped is None:
        raise DataErased(f"no data key for customer {customer_id}")
    return keyring.unwrap(row.kek_id, row.wrapped, customer_id=customer_id)


async def erase_data_key(session: AsyncSession, customer_id: int) -> None:
    row = (await session.exec(select(DataKey).where(DataKey.customer_id == customer_id))).first()
    if row is not None:
        row.wrapped, row.erased_at = None, utcnow()
        session.add(row)


def seal(key: bytes, value: Any, *, table: str, row_id: int) -> bytes:
    return seal_with(key, value, context=f"{table}:{row_id}")


def unseal(key: bytes, token: bytes | None, *, table: str, row_id: int) -> Any:
    if token is None:
        return None
    return open_with(key, token, context=f"{table}:{row_id}")


_BOUND = b"\x02"  # then crypto's token; without it, a token from before the tighter binding


def is_legacy(token: bytes | None) -> bool:
    """Sealed before change records and customer blobs were bound to their own row."""
    return token is not None and token[:1] != _BOUND


def _change_context(record: ChangeRecord) -> str:
    return _change_context_of(record.id, record.entity, record.entity_id, record.action)


def _change_context_of(record_id: int | None, entity: str, entity_id: int, action: str) -> str:
    return f"change_records:{record_id}:{entity}:{entity_id}:{action}"


def seal_change(key: bytes, diff: Any, record: ChangeRecord) -> bytes:
    """A change record's difference, bound to that record (it must have its id already)."""
    assert record.id is not None
    return _BOUND + seal_with(key, diff, context=_change_context(record))


def seal_change_row(
    key: bytes, diff: Any, *, record_id: int, entity: str, entity_id: int, action: str
) -> bytes:
    """`seal_change` for a row written in bulk (storage.ownership), without its ORM object."""
    return _BOUND + seal_with(
        key, diff, context=_change_context_of(record_id, entity, entity_id, action)
    )


def open_change(key: bytes, record: ChangeRecord) -> Any:
    token = record.diff_sealed
    if token is None:
        return None
    if token[:1] == _BOUND:
        return open_with(key, token[1:], context=_change_context(record))
    return unseal(key, token, table="change_records", row_id=record.customer_id)


def customer_change(
    customer_id: int,
    *,
    action: str,
    changed_by: int | None,
    changed_at: datetime,
    review_id: int | None = None,
) -> ChangeRecord:
    """A history line of the customer record itself (entity and customer are the same)."""
    return ChangeRecord(
        entity="customer",
        entity_id=customer_id,
        customer_id=customer_id,
        action=action,
        changed_by=changed_by,
        changed_at=changed_at,
        review_id=review_id,
    )


async def add_change(
    session: AsyncSession, key: bytes, record: ChangeRecord, diff: Any | None
) -> ChangeRecord:
    """Add a change record with `diff` sealed to it (flushed first: the seal needs its id)."""
    session.add(record)
    await session.flush()
    if diff is not None:
        record.diff_sealed = seal_change(key, diff, record)
        session.add(record)
    return record


def _customer_context(customer_id: int, sealed_seq: int) -> str:
    return f"customers:{customer_id}:{sealed_seq}"


def seal_customer(key: bytes, values: Any, *, customer_id: int, sealed_seq: int) -> bytes:
    """A customer's sensitive values, bound to the customer and to `sealed_seq`: the caller
    writes that number into the row with the blob (one more than the row had)."""
    return _BOUND + seal_with(key, values, context=_customer_context(customer_id, sealed_seq))


def open_customer(key: bytes, customer: Customer) -> Any:
    assert customer.id is not None
    return open_customer_blob(
        key, customer.sealed, customer_id=customer.id, sealed_seq=customer.sealed_seq
    )


def open_customer_blob(
    key: bytes, token: bytes | None, *, customer_id: int, sealed_seq: int
) -> Any:
    """`open_customer` for a blob read as plain columns (storage.exports reads pages so)."""
    if token is None:
        return None
    if token[:1] == _BOUND:
        return open_with(key, token[1:], context=_customer_context(customer_id, sealed_seq))
    return unseal(key, token, table="customers", row_id=customer_id)
