"""Staff and customers put in the archive directly, for tests of what people see of them.

The one `staff_of` and the one customer factory (`add_customer`) of the tests; the flows' test
helpers (`record_helpers.make_customer`, `field_helpers.customer_of`) are thin adapters of it
that keep their own defaults.
"""

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
from tests.auxil.fake_telegram import Person

COMPANY = "杭州明远机械有限公司"


async def staff_of(sessions: SessionFactory, who: Person | int) -> Staff:
    """The staff row of a person (or of a Telegram id)."""
    telegram_id = who.id if isinstance(who, Person) else who
    async with unit_of_work(sessions) as session:
        staff = await staff_by_telegram_id(session, telegram_id)
    assert staff is not None
    return staff


async def add_customer(
    sessions: SessionFactory,
    keyring: Keyring,
    owner: Person | int,
    name: str = COMPANY,
    *,
    status: str | None = None,
    status_in_place: bool = False,
    **values: Any,
) -> Customer:
    """Enter a customer as `owner` would (pending, sealed, indexed), then set its status.

    A company of class C on a green apple unless `values` say otherwise. `status`, if given, is
    set afterwards as a writer would (`updated_at` and `version` move too), or with
    `status_in_place` in the same unit of work as the entry.
    """
    actor = await staff_of(sessions, owner)
    fields = {"kind": "company", "name": name, "customer_class": "C", "stage": "green"}
    fields.update(values)
    async with unit_of_work(sessions) as session:
        customer = await customer_store.create_customer(
            session, keyring=keyring, actor=actor, values=fields
        )
        if status is not None and status_in_place:
            customer.status = status
            session.add(customer)
    if status is not None and not status_in_place:
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
