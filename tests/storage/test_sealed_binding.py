"""Ciphertext swaps within one customer fail to open: each change record's difference is bound
to its own row and action, a customer's blob to the count of its sealed writes. Values sealed
before that binding still open, and rotate-keys re-seals them bound."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from storage import cards, changes, customers, vault
from storage.crypto import DecryptionError, Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import ChangeRecord, Customer, RecordStatus, Role, Staff, Team
from storage.rotation import rotate_keys

VALUES: dict[str, Any] = {
    "kind": "company",
    "name": "Alpha Trading",
    "phones": ["+8613812345678"],
    "email": "old@example.cn",
}


async def _seller(sessions: SessionFactory) -> Staff:
    async with unit_of_work(sessions) as session:
        team = Team(name="East")
        session.add(team)
        await session.flush()
        staff = Staff(telegram_id=1001, display_name="Wang", role=Role.salesperson, team_id=team.id)
        session.add(staff)
        await session.flush()
    return staff


async def _customer(sessions: SessionFactory, keyring: Keyring, owner: Staff) -> Customer:
    async with unit_of_work(sessions) as session:
        customer = await customers.create_customer(
            session, keyring=keyring, actor=owner, values=dict(VALUES)
        )
        customer.status = RecordStatus.rejected  # edited at once, not proposed
        session.add(customer)
    return customer


async def _edit(
    sessions: SessionFactory, keyring: Keyring, owner: Staff, customer_id: int, **values: Any
) -> None:
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        await changes.edit_customer(
            session,
            keyring=keyring,
            actor=owner,
            customer=customer,
            version=customer.version,
            values=values,
        )


async def _records(sessions: SessionFactory) -> list[ChangeRecord]:
    async with sessions() as session:
        return list((await session.exec(select(ChangeRecord).order_by(col(ChangeRecord.id)))).all())


async def _sql(sessions: SessionFactory, sql: str, **params: object) -> None:
    async with unit_of_work(sessions) as session:
        await session.exec(text(sql).bindparams(**params))


async def _open_all(sessions: SessionFactory, keyring: Keyring) -> list[Any]:
    records = await _records(sessions)
    async with sessions() as session:
        key = await vault.data_key(session, keyring, records[0].customer_id)
    return [vault.open_change(key, r) for r in records]


@pytest.fixture
async def edited(session_factory: SessionFactory, keyring: Keyring) -> tuple[Staff, Customer]:
    """A customer with three change records: create, and two edits."""
    seller = await _seller(session_factory)
    customer = await _customer(session_factory, keyring, seller)
    assert customer.id is not None
    await _edit(session_factory, keyring, seller, customer.id, email="new@example.cn")
    await _edit(session_factory, keyring, seller, customer.id, phones=["+8613900001111"])
    return seller, customer


async def test_the_normal_history_opens(
    edited: tuple[Staff, Customer], session_factory: SessionFactory, keyring: Keyring
) -> None:
    _, customer = edited
    diffs = await _open_all(session_factory, keyring)
    assert diffs[1] == {"email": ["old@example.cn", "new@example.cn"]}
    assert diffs[2] == {"phones": [["+8613812345678"], ["+8613900001111"]]}
    async with session_factory() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None and row.sealed_seq == 3  # created, then two sealed writes
        assert (await customers.sealed_fields(session, keyring, row))["email"] == "new@example.cn"


async def test_swapped_change_records_fail_to_open(
    edited: tuple[Staff, Customer], session_factory: SessionFactory, keyring: Keyring
) -> None:
    seller, _ = edited
    first, second, third = await _records(session_factory)
    await _sql(
        session_factory,
        "UPDATE change_records SET diff_sealed = :d WHERE id = :i",
        d=third.diff_sealed,
        i=second.id,
    )
    await _sql(
        session_factory,
        "UPDATE change_records SET diff_sealed = :d WHERE id = :i",
        d=second.diff_sealed,
        i=third.id,
    )
    records = await _records(session_factory)
    async with session_factory() as session:
        key = await vault.data_key(session, keyring, first.customer_id)
        for record in records[1:]:
            with pytest.raises(DecryptionError):
                vault.open_change(key, record)
        with pytest.raises(DecryptionError):  # the card's history does not show them either
            await cards.history(
                session, keyring=keyring, actor=seller, customer_id=first.customer_id, page=0
            )
    assert vault.open_change(key, records[0]) is not None  # the untouched one still opens


async def test_a_change_record_relabelled_fails_to_open(
    edited: tuple[Staff, Customer], session_factory: SessionFactory, keyring: Keyring
) -> None:
    """The create record's difference shown as an update (its action, or another entity)."""
    first = (await _records(session_factory))[0]
    await _sql(
        session_factory, "UPDATE change_records SET action = 'update' WHERE id = :i", i=first.id
    )
    with pytest.raises(DecryptionError):
        await _open_all(session_factory, keyring)
    await _sql(
        session_factory,
        "UPDATE change_records SET action = 'create', entity = 'key_person' WHERE id = :i",
        i=first.id,
    )
    with pytest.raises(DecryptionError):
        await _open_all(session_factory, keyring)


async def test_an_older_blob_put_back_fails_to_open(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    seller = await _seller(session_factory)
    customer = await _customer(session_factory, keyring, seller)
    assert customer.id is not None
    old_blob, old_seq = customer.sealed, customer.sealed_seq
    await _edit(session_factory, keyring, seller, customer.id, email="new@example.cn")

    await _sql(
        session_factory, "UPDATE customers SET sealed = :s WHERE id = :i", s=old_blob, i=customer.id
    )
    async with session_factory() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        with pytest.raises(DecryptionError):
            await customers.sealed_fields(session, keyring, row)

    stripped = old_blob[1:] if old_blob else None  # passed off as sealed before the binding
    await _sql(
        session_factory, "UPDATE customers SET sealed = :s WHERE id = :i", s=stripped, i=customer.id
    )
    async with session_factory() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None and row.sealed_seq == old_seq + 1
        with pytest.raises(DecryptionError):
            await customers.sealed_fields(session, keyring, row)


async def test_a_blob_of_another_customer_fails_to_open(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    seller = await _seller(session_factory)
    one = await _customer(session_factory, keyring, seller)
    two = await _customer(session_factory, keyring, seller)
    await _sql(
        session_factory, "UPDATE customers SET sealed = :s WHERE id = :i", s=one.sealed, i=two.id
    )
    async with session_factory() as session:
        row = await session.get(Customer, two.id)
        assert row is not None
        with pytest.raises(DecryptionError):
            await customers.sealed_fields(session, keyring, row)


# --- values sealed before the binding ----------------------------------------------------------


async def _make_legacy(sessions: SessionFactory, keyring: Keyring, customer: Customer) -> None:
    """Re-seal the customer's blob and history the way the code before the binding did."""
    assert customer.id is not None
    async with unit_of_work(sessions) as session:
        key = await vault.data_key(session, keyring, customer.id)
        row = await session.get(Customer, customer.id)
        assert row is not None
        values = vault.open_customer(key, row)
        row.sealed = vault.seal(key, values, table="customers", row_id=customer.id)
        row.sealed_seq = 0
        session.add(row)
        for record in (await session.exec(select(ChangeRecord))).all():
            diff = vault.open_change(key, record)
            record.diff_sealed = vault.seal(key, diff, table="change_records", row_id=customer.id)
            session.add(record)


async def test_legacy_values_open_and_rotation_binds_them(
    edited: tuple[Staff, Customer], session_factory: SessionFactory, keyring: Keyring
) -> None:
    seller, customer = edited
    assert customer.id is not None
    before = await _open_all(session_factory, keyring)
    await _make_legacy(session_factory, keyring, customer)
    records = await _records(session_factory)
    assert all(vault.is_legacy(r.diff_sealed) for r in records)
    assert await _open_all(session_factory, keyring) == before  # still readable
    async with session_factory() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None and vault.is_legacy(row.sealed)
        values = await customers.sealed_fields(session, keyring, row)
        assert values["email"] == "new@example.cn"

    # an edit of a legacy customer writes a bound blob
    await _edit(session_factory, keyring, seller, customer.id, email="third@example.cn")
    await _make_legacy(session_factory, keyring, customer)

    report = await rotate_keys(session_factory, keyring)
    assert report.resealed_bound == 4 + 1  # four change records and the customer's blob
    records = await _records(session_factory)
    assert not any(vault.is_legacy(r.diff_sealed) for r in records)
    assert (await _open_all(session_factory, keyring))[:3] == before
    async with session_factory() as session:
        row = await session.get(Customer, customer.id)
        assert row is not None and not vault.is_legacy(row.sealed) and row.sealed_seq == 1
        assert (await customers.sealed_fields(session, keyring, row))["email"] == "third@example.cn"
    assert (await rotate_keys(session_factory, keyring)).resealed_bound == 0  # nothing left

    # and now a swap fails as for values sealed bound from the start
    await _sql(
        session_factory,
        "UPDATE change_records SET diff_sealed = :d WHERE id = :i",
        d=records[0].diff_sealed,
        i=records[1].id,
    )
    with pytest.raises(DecryptionError):
        await _open_all(session_factory, keyring)


async def test_rotation_skips_erased_customers(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    seller = await _seller(session_factory)
    customer = await _customer(session_factory, keyring, seller)
    await _make_legacy(session_factory, keyring, customer)
    async with unit_of_work(session_factory) as session:
        await vault.erase_data_key(session, customer.id or 0)
    report = await rotate_keys(session_factory, keyring, batch=1)
    assert report.resealed_bound == 0
