"""Per-customer data keys: create, open and erase; sealing values bound to their record."""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring, open_with, seal_with
from storage.models import DataKey
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
