"""Customers and key persons put straight into the database, and ways to look at them."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from storage import customers as customer_store
from storage import vault
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, ChangeRecord, Customer, KeyPerson
from tests.auxil.customer_factory import COMPANY, add_customer
from tests.auxil.fake_telegram import Person
from tests.auxil.world import World


async def make_customer(
    world: World, owner: Person, *, status: str = "pending", name: str = COMPANY, **values: Any
) -> int:
    """A company customer of `owner`, entered as /new would, then put in `status`."""
    customer = await add_customer(
        world.services.sessions,
        world.services.keyring,
        owner,
        name,
        status=status,
        status_in_place=True,
        **{
            "source": "visit",
            "customer_class": "B",
            "stage": "green",
            "deal_status": "none",
            "consent_given": False,
            **values,
        },
    )
    assert customer.id is not None
    return customer.id


async def set_status(sessions: SessionFactory, customer_id: int, status: str) -> None:
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        customer.status = status
        session.add(customer)


async def customer_row(sessions: SessionFactory, customer_id: int) -> Customer:
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, customer_id)
    assert customer is not None
    return customer


async def sealed_of(world: World, customer_id: int) -> dict[str, Any]:
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return await customer_store.sealed_fields(session, world.services.keyring, customer)


async def history_of(world: World, customer_id: int) -> list[tuple[ChangeRecord, Any]]:
    """The customer's change records, oldest first, each with its difference opened."""
    async with unit_of_work(world.services.sessions) as session:
        rows = (
            await session.exec(
                select(ChangeRecord)
                .where(ChangeRecord.customer_id == customer_id)
                .order_by(col(ChangeRecord.id))
            )
        ).all()
        key = await vault.data_key(session, world.services.keyring, customer_id)
    return [(r, vault.open_change(key, r)) for r in rows]


async def key_person_rows(sessions: SessionFactory) -> list[KeyPerson]:
    async with unit_of_work(sessions) as session:
        return list((await session.exec(select(KeyPerson).order_by(col(KeyPerson.id)))).all())


async def audit_entries(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with unit_of_work(sessions) as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        )
        return list(rows.all())


def card(person: Person) -> dict[str, Any]:
    """A stand-in for the customer card message whose buttons a person presses."""
    return {"message_id": 1, "date": 1_790_000_000, "chat": person.chat, "text": "card"}
