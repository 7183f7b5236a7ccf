"""Master-key rotation: re-wrap data keys, re-index, re-seal drafts; the old key can then go."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from storage import audit, customers, drafts, vault
from storage.crypto import DecryptionError, Keyring, MasterKey
from storage.db import SessionFactory, unit_of_work
from storage.models import AuditEntry, BlindIndex, Customer, DataKey, Draft, Role, Staff, Team
from storage.rotation import rotate_keys

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
KID1 = MasterKey.from_bytes(K1).kid
KID2 = MasterKey.from_bytes(K2).kid


@pytest.fixture
def keyring() -> Keyring:
    """The keys of the process whose sessions write the audit log: both, as during a rotation
    (the audit MAC key must open with them; its own rotation is in test_audit_mac.py)."""
    return Keyring([K2, K1])


PEOPLE: dict[str, dict[str, Any]] = {
    "Alpha Trading": {
        "phones": ["+8613812345678"],
        "tax_no": "91350100M000100Y43",
        "email": "a@example.cn",
        "account_no": "6222020200112233445",
    },
    "Beta Foods": {"phones": ["+8613900001111", "+8613900002222"], "address": "厦门市思明区"},
    "Gamma Tools": {"email": "gamma@example.cn"},  # nothing indexed
    "Delta Paper": {"billing_phone": "+8659187654321", "tax_no": "91350200MA2XYZ1234"},
}


async def _seller(session_factory: SessionFactory, telegram_id: int) -> Staff:
    async with unit_of_work(session_factory) as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).first()
        if team is None:
            team = Team(name="East")
            session.add(team)
            await session.flush()
        staff = Staff(
            telegram_id=telegram_id,
            display_name=f"seller {telegram_id}",
            role=Role.salesperson,
            team_id=team.id,
        )
        session.add(staff)
        await session.flush()
    return staff


async def _create(
    session_factory: SessionFactory, keyring: Keyring, actor: Staff, name: str
) -> Customer:
    async with unit_of_work(session_factory) as session:
        return await customers.create_customer(
            session,
            keyring=keyring,
            actor=actor,
            values={"kind": "company", "name": name, **PEOPLE[name]},
        )


async def _rows(session_factory: SessionFactory, model: Any) -> list[Any]:
    async with session_factory() as session:
        return list((await session.exec(select(model).order_by(col(model.id)))).all())


async def _setup(session_factory: SessionFactory) -> tuple[list[Staff], dict[str, Customer]]:
    """Four customers, a draft and some audit entries, all under K1 only."""
    old = Keyring([K1])
    sellers = [await _seller(session_factory, 1001), await _seller(session_factory, 1002)]
    made = {}
    for i, name in enumerate(PEOPLE):
        made[name] = await _create(session_factory, old, sellers[i % 2], name)
    async with unit_of_work(session_factory) as session:
        await drafts.save(
            session,
            old,
            sellers[0].id or 0,
            drafts.DraftState(
                flow="new_customer",
                step="tax_no",
                token=3,
                data={"name": "Half Done", "phones": ["+8613700000000"]},
            ),
        )
    return sellers, made


async def _dupes(
    session_factory: SessionFactory, keyring: Keyring, actor: Staff, **kwargs: Any
) -> list[tuple[int, str]]:
    async with session_factory() as session:
        found = await customers.matches(session, keyring=keyring, team_id=actor.team_id, **kwargs)
    return [(d.customer_id, d.reason) for d in found]


async def test_rotation_moves_everything_to_the_new_key(session_factory: SessionFactory) -> None:
    sellers, made = await _setup(session_factory)
    alpha, beta, delta = made["Alpha Trading"], made["Beta Foods"], made["Delta Paper"]
    assert {k.kek_id for k in await _rows(session_factory, DataKey)} == {KID1}
    assert {i.kek_id for i in await _rows(session_factory, BlindIndex)} == {KID1}
    index_count = len(await _rows(session_factory, BlindIndex))
    assert index_count == 6  # alpha phone + tax, beta 2 phones, delta billing phone + tax

    during = Keyring([K2, K1])
    new_only = Keyring([K2])
    # before the rotation runs, look-ups with both keys still find values indexed under K1 ...
    assert await _dupes(session_factory, during, sellers[1], phones=["+8613812345678"]) == [
        (alpha.id, "phone")
    ]
    assert await _dupes(session_factory, during, sellers[1], tax_no="91350200MA2XYZ1234") == [
        (delta.id, "tax_no")
    ]
    # ... which the new key alone cannot (so the rotation below is what makes them findable)
    assert await _dupes(session_factory, new_only, sellers[1], phones=["+8613812345678"]) == []
    async with session_factory() as session:
        with pytest.raises(DecryptionError, match="not configured"):
            await customers.sealed_fields(session, new_only, alpha)

    # a customer entered during the rotation window is sealed under the new key right away
    async with unit_of_work(session_factory) as session:
        fresh = await customers.create_customer(
            session,
            keyring=during,
            actor=sellers[0],
            values={"kind": "company", "name": "Epsilon", "phones": ["+8613655556666"]},
        )

    report = await rotate_keys(session_factory, during)
    assert report.data_keys == 4  # not the fresh one, already on K2
    assert report.drafts == 1
    assert report.indexed_customers == 3  # alpha, beta, delta (gamma has nothing indexed)
    assert report.left_on_old_keys == 0

    keys = await _rows(session_factory, DataKey)
    assert len(keys) == 5 and {k.kek_id for k in keys} == {KID2}
    indexes = await _rows(session_factory, BlindIndex)
    assert len(indexes) == index_count + 1 and {i.kek_id for i in indexes} == {KID2}
    draft_rows = await _rows(session_factory, Draft)
    assert len(draft_rows) == 1 and new_only.sealed_kid(draft_rows[0].sealed) == KID2

    # the old key can now be removed: the new one alone reads and finds everything
    async with session_factory() as session:
        for name, customer in made.items():
            stored = await session.get(Customer, customer.id)
            assert stored is not None
            assert await customers.sealed_fields(session, new_only, stored) == PEOPLE[name]
        stored_fresh = await session.get(Customer, fresh.id)
        assert stored_fresh is not None
        assert await customers.sealed_fields(session, new_only, stored_fresh) == {
            "phones": ["+8613655556666"]
        }
        draft = await drafts.load(session, new_only, sellers[0].id or 0, not_before=None)
    assert draft is not None
    assert (draft.flow, draft.step, draft.token) == ("new_customer", "tax_no", 3)
    assert draft.data == {"name": "Half Done", "phones": ["+8613700000000"]}

    for phone, customer in [
        ("+8613812345678", alpha),
        ("+8613900002222", beta),
        ("+8659187654321", delta),
        ("+8613655556666", fresh),
    ]:
        assert await _dupes(session_factory, new_only, sellers[1], phones=[phone]) == [
            (customer.id, "phone")
        ], phone
    assert await _dupes(session_factory, new_only, sellers[1], tax_no="91350100M000100Y43") == [
        (alpha.id, "tax_no")
    ]
    # ... and the old key alone no longer opens the data keys
    async with session_factory() as session:
        with pytest.raises(DecryptionError):
            await customers.sealed_fields(session, Keyring([K1]), alpha)

    # the rotation is in the audit log, which still verifies
    entries = await _rows(session_factory, AuditEntry)
    assert entries[-1].action == "keys.rotate" and KID2 in (entries[-1].detail or "")
    async with session_factory() as session:
        assert (await audit.verify_chain(session)).ok


async def test_rotating_twice_is_a_no_op(session_factory: SessionFactory) -> None:
    await _setup(session_factory)
    keyring = Keyring([K2, K1])
    await rotate_keys(session_factory, keyring)
    keys = [(k.id, k.kek_id, k.wrapped) for k in await _rows(session_factory, DataKey)]
    indexes = [(i.id, i.kek_id, i.digest) for i in await _rows(session_factory, BlindIndex)]
    sealed_drafts = [d.sealed for d in await _rows(session_factory, Draft)]
    audit_count = len(await _rows(session_factory, AuditEntry))

    again = await rotate_keys(session_factory, keyring)
    assert (again.data_keys, again.drafts, again.indexed_customers, again.left_on_old_keys) == (
        0,
        0,
        0,
        0,
    )
    assert [(k.id, k.kek_id, k.wrapped) for k in await _rows(session_factory, DataKey)] == keys
    assert [(i.id, i.kek_id, i.digest) for i in await _rows(session_factory, BlindIndex)] == indexes
    assert [d.sealed for d in await _rows(session_factory, Draft)] == sealed_drafts
    assert len(await _rows(session_factory, AuditEntry)) == audit_count + 1  # logged, nothing else


async def test_rotation_in_small_batches_covers_every_row(session_factory: SessionFactory) -> None:
    sellers = [await _seller(session_factory, 1001)]
    old = Keyring([K1])
    ids = []
    for i in range(7):
        async with unit_of_work(session_factory) as session:
            customer = await customers.create_customer(
                session,
                keyring=old,
                actor=sellers[0],
                values={
                    "kind": "individual",
                    "name": f"Person {i}",
                    "phones": [f"+86138000000{i:02d}"],
                },
            )
            ids.append(customer.id)
    report = await rotate_keys(session_factory, Keyring([K2, K1]), batch=2)
    assert (report.data_keys, report.indexed_customers, report.left_on_old_keys) == (7, 7, 0)
    assert {k.kek_id for k in await _rows(session_factory, DataKey)} == {KID2}
    assert {i.kek_id for i in await _rows(session_factory, BlindIndex)} == {KID2}
    for i, customer_id in enumerate(ids):
        assert await _dupes(
            session_factory, Keyring([K2]), sellers[0], phones=[f"+86138000000{i:02d}"]
        ) == [(customer_id, "phone")]


async def test_rotation_skips_erased_data_keys_and_drops_their_indexes(
    session_factory: SessionFactory,
) -> None:
    sellers, made = await _setup(session_factory)
    alpha = made["Alpha Trading"]
    async with unit_of_work(session_factory) as session:
        await vault.erase_data_key(session, alpha.id or 0)
    report = await rotate_keys(session_factory, Keyring([K2, K1]))
    assert report.data_keys == 3 and report.left_on_old_keys == 0
    erased = [k for k in await _rows(session_factory, DataKey) if k.customer_id == alpha.id]
    assert erased[0].wrapped is None and erased[0].erased_at is not None
    assert [i for i in await _rows(session_factory, BlindIndex) if i.customer_id == alpha.id] == []
    assert await _dupes(session_factory, Keyring([K2]), sellers[1], phones=["+8613812345678"]) == []


async def test_rotation_recomputes_key_persons_phone_indexes(
    session_factory: SessionFactory,
) -> None:
    """Key persons' phones are indexed too (naming the key person); they move to the new key."""
    from storage import key_persons

    sellers, made = await _setup(session_factory)
    alpha = made["Alpha Trading"]
    old = Keyring([K1])
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, alpha.id)
        assert customer is not None
        person = await key_persons.add_key_person(
            session,
            keyring=old,
            actor=sellers[0],
            customer=customer,
            values={"kp_name": "Wang", "kp_phones": ["+8613511112222", "+8613533334444"]},
        )
    people_rows = [i for i in await _rows(session_factory, BlindIndex) if i.key_person_id]
    assert len(people_rows) == 2 and {i.kek_id for i in people_rows} == {KID1}

    report = await rotate_keys(session_factory, Keyring([K2, K1]))
    assert report.indexed_key_persons == 1
    assert report.indexed_customers == 3  # the customers' own rows, as before
    people_rows = [i for i in await _rows(session_factory, BlindIndex) if i.key_person_id]
    assert len(people_rows) == 2
    assert {(i.kek_id, i.key_person_id, i.customer_id) for i in people_rows} == {
        (KID2, person.id, alpha.id)
    }
    assert await _dupes(session_factory, Keyring([K2]), sellers[1], phones=["+8613533334444"]) == [
        (alpha.id, "phone")
    ]
    again = await rotate_keys(session_factory, Keyring([K2, K1]))
    assert again.indexed_key_persons == 0
