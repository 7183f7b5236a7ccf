"""Putting customers in the archive directly, for tests of what people see of them."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import update

from storage import customers as customer_store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Customer, Staff
from storage.staff import staff_by_telegram_id
from storage.types import utcnow


async def staff_of(sessions: SessionFactory, telegram_id: int) -> Staff:
    async with unit_of_work(sessions) as session:
        staff = await staff_by_telegram_id(session, telegram_id)
    assert staff is not None
    return staff


async def add_customer(
    sessions: SessionFactory,
    keyring: Keyring,
    owner_telegram_id: int,
    name: str,
    *,
    status: str | None = None,
    **values: Any,
) -> Customer:
    """Enter a customer as `owner` would (pending, sealed, indexed), then set its status."""
    owner = await staff_of(sessions, owner_telegram_id)
    fields = {"kind": "company", "name": name, "customer_class": "C", "stage": "green"}
    fields.update(values)
    async with unit_of_work(sessions) as session:
        customer = await customer_store.create_customer(
            session, keyring=keyring, actor=owner, values=fields
        )
    if status is not None:
        await set_columns(sessions, customer.id or 0, status=status)
        customer.status = status
    return customer


async def set_columns(sessions: SessionFactory, customer_id: int, **columns: Any) -> None:
    """Change a customer's columns as a writer would: `updated_at` and `version` move too."""
    async with unit_of_work(sessions) as session:
        await session.exec(
            update(Customer)
            .where(Customer.id == customer_id)  # type: ignore[arg-type]
            .values(**columns, updated_at=utcnow(), version=Customer.version + 1)
        )


def follow_up(day: str) -> date:
    return date.fromisoformat(day)
