"""storage.changes: immediate edits, pending changes, and the version that makes one of two
simultaneous edits win."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from sqlmodel import col, select

from storage import audit, changes, customers, vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import NotFound, Refused
from storage.models import AuditEntry, ChangeRecord, Customer, Review, Role, Staff, Team

VALUES: dict[str, Any] = {
    "kind": "company",
    "name": "Alpha Trading",
    "phones": ["+8613812345678"],
    "email": "old@example.cn",
    "customer_class": "B",
    "next_followup_on": "2026-12-01",
}


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([os.urandom(32)])


async def _staff(sessions: SessionFactory, telegram_id: int, role: str, team: str) -> Staff:
    async with unit_of_work(sessions) as session:
        found = (await session.exec(select(Team).where(Team.name == team))).first()
        if found is None:
            found = Team(name=team)
            session.add(found)
            await session.flush()
        staff = Staff(
            telegram_id=telegram_id, display_name=str(telegram_id), role=role, team_id=found.id
        )
        session.add(staff)
        await session.flush()
    return staff


async def _customer(
    sessions: SessionFactory, keyring: Keyring, owner: Staff, status: str
) -> Customer:
    async with unit_of_work(sessions) as session:
        customer = await customers.create_customer(
            session, keyring=keyring, actor=owner, values=dict(VALUES)
        )
        customer.status = status
        session.add(customer)
    return customer


async def _edit(
    sessions: SessionFactory,
    keyring: Keyring,
    actor: Staff,
    customer_id: int,
    values: dict[str, Any],
    version: int = 1,
) -> changes.EditResult:
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return await changes.edit_customer(
            session,
            keyring=keyring,
            actor=actor,
            customer=customer,
            version=version,
            values=values,
        )


async def _history(sessions: SessionFactory, keyring: Keyring, customer_id: int) -> list[Any]:
    async with unit_of_work(sessions) as session:
        rows = (
            await session.exec(
                select(ChangeRecord)
                .where(ChangeRecord.customer_id == customer_id)
                .order_by(col(ChangeRecord.id))
            )
        ).all()
        key = await vault.data_key(session, keyring, customer_id)
    return [
        (
            r.action,
            r.review_id,
            vault.open_change(key, r),
        )
        for r in rows
    ]


async def test_a_draft_is_changed_at_once(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    customer = await _customer(session_factory, keyring, owner, "draft")
    assert customer.id is not None
    result = await _edit(
        session_factory,
        keyring,
        owner,
        customer.id,
        {"email": "new@example.cn", "phones": ["+8613900001111"], "next_followup_on": "2026-12-24"},
    )
    assert result.mode == changes.EditMode.apply and result.review_id is None
    assert result.changes == {
        "email": ["old@example.cn", "new@example.cn"],
        "phones": [["+8613812345678"], ["+8613900001111"]],
        "next_followup_on": ["2026-12-01", "2026-12-24"],
    }
    async with unit_of_work(session_factory) as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        sealed = await customers.sealed_fields(session, keyring, stored)
        found = await customers.matches(
            session, keyring=keyring, team_id=owner.team_id, phones=["+8613900001111"]
        )
        old = await customers.matches(
            session, keyring=keyring, team_id=owner.team_id, phones=["+8613812345678"]
        )
    assert stored.version == 2 and str(stored.next_followup_on) == "2026-12-24"
    assert sealed["email"] == "new@example.cn" and sealed["phones"] == ["+8613900001111"]
    assert [d.customer_id for d in found] == [customer.id] and old == []
    assert (await _history(session_factory, keyring, customer.id))[-1] == (
        "update",
        None,
        result.changes,
    )

    # the same values again change nothing and write nothing
    again = await _edit(
        session_factory, keyring, owner, customer.id, {"email": "new@example.cn"}, version=2
    )
    assert again.changes == {}
    assert len(await _history(session_factory, keyring, customer.id)) == 2


async def test_an_approved_record_gets_a_review_and_keeps_its_values(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    customer = await _customer(session_factory, keyring, owner, "approved")
    assert customer.id is not None
    result = await _edit(session_factory, keyring, owner, customer.id, {"email": "new@example.cn"})
    assert result.mode == changes.EditMode.propose and result.review_id is not None
    async with unit_of_work(session_factory) as session:
        stored = await session.get(Customer, customer.id)
        review = await session.get(Review, result.review_id)
        assert stored is not None and review is not None
        sealed = await customers.sealed_fields(session, keyring, stored)
        pending = await changes.pending_change_fields(session, keyring=keyring, customer=stored)
    assert stored.version == 1 and sealed["email"] == "old@example.cn"
    assert (review.kind, review.status, review.submitted_by) == (
        "customer_change",
        "pending",
        owner.id,
    )
    assert pending == {"email"}

    # the same field again is refused until the manager decides; another field is its own review
    with pytest.raises(Refused) as refused:
        await _edit(session_factory, keyring, owner, customer.id, {"email": "x@example.cn"})
    assert refused.value.code == "change_pending" and refused.value.details["fields"] == ["email"]
    other = await _edit(session_factory, keyring, owner, customer.id, {"industry": "机械"})
    assert other.review_id not in (None, result.review_id)

    # approval (storage.reviews) applies the sealed difference through apply_change
    manager = await _staff(session_factory, 2, Role.manager, "East")
    async with unit_of_work(session_factory) as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        found = await changes.pending_changes(session, keyring=keyring, customer=stored)
        await changes.apply_change(
            session,
            keyring=keyring,
            customer=stored,
            changes=found[result.review_id],
            actor_id=manager.id,
            review_id=result.review_id,
        )
        assert stored.version == 2  # the object in the session is kept in step with the row
        assert (await customers.sealed_fields(session, keyring, stored))["email"] == (
            "new@example.cn"
        )
    async with unit_of_work(session_factory) as session:
        stored = await session.get(Customer, customer.id)
        assert stored is not None
        assert (await customers.sealed_fields(session, keyring, stored))["email"] == (
            "new@example.cn"
        )
    assert stored.version == 2
    actions = await _history(session_factory, keyring, customer.id)
    assert actions[-1] == (
        "update",
        result.review_id,
        {"email": ["old@example.cn", "new@example.cn"]},
    )
    async with unit_of_work(session_factory) as session:
        entries = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
        assert (await audit.verify_chain(session)).ok
    assert entries[-1].action == "customer.update" and entries[-1].actor_telegram_id == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [("pending", "under_review"), ("archived", "read_only"), ("destroyed", "not_found")],
)
async def test_states_that_cannot_be_edited(
    session_factory: SessionFactory, keyring: Keyring, status: str, code: str
) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    customer = await _customer(session_factory, keyring, owner, status)
    assert customer.id is not None
    with pytest.raises(Refused) as refused:
        await _edit(session_factory, keyring, owner, customer.id, {"email": "x@example.cn"})
    assert refused.value.code == code
    if status == "destroyed":
        assert isinstance(refused.value, NotFound)


async def test_who_may_edit(session_factory: SessionFactory, keyring: Keyring) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    colleague = await _staff(session_factory, 2, Role.salesperson, "East")
    west_manager = await _staff(session_factory, 3, Role.manager, "West")
    east_manager = await _staff(session_factory, 4, Role.manager, "East")
    customer = await _customer(session_factory, keyring, owner, "rejected")
    assert customer.id is not None
    for intruder in (colleague, west_manager):
        with pytest.raises(Refused, match="not_allowed"):
            await _edit(session_factory, keyring, intruder, customer.id, {"region": "x"})
    result = await _edit(session_factory, keyring, east_manager, customer.id, {"region": "浙江"})
    assert result.changes == {"region": [None, "浙江"]}
    with pytest.raises(Refused, match="incomplete"):
        await _edit(session_factory, keyring, owner, customer.id, {"name": ""}, version=2)
    with pytest.raises(ValueError, match="not editable"):
        await _edit(session_factory, keyring, owner, customer.id, {"status": "approved"}, 2)


async def test_an_edit_started_on_an_older_version_is_refused(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    customer = await _customer(session_factory, keyring, owner, "rejected")
    assert customer.id is not None
    await _edit(session_factory, keyring, owner, customer.id, {"industry": "机械"})
    with pytest.raises(changes.ChangedMeanwhile):
        await _edit(session_factory, keyring, owner, customer.id, {"industry": "纺织"}, version=1)


async def test_two_writers_of_one_version_at_once_one_wins(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    """Both read version 1; both then write at the same time: the version lets one through."""
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    customer = await _customer(session_factory, keyring, owner, "rejected")
    assert customer.id is not None
    copies = []
    for _ in range(2):
        async with unit_of_work(session_factory) as session:
            copies.append(await session.get(Customer, customer.id))

    async def write(copy: Customer | None, value: str) -> str:
        assert copy is not None
        try:
            async with unit_of_work(session_factory) as session:
                await changes.apply_change(
                    session,
                    keyring=keyring,
                    customer=copy,
                    changes={"industry": [None, value]},
                    actor_id=owner.id,
                    review_id=None,
                )
        except changes.ChangedMeanwhile:
            return "lost"
        return "won"

    outcomes = await asyncio.gather(write(copies[0], "机械"), write(copies[1], "纺织"))
    assert sorted(outcomes) == ["lost", "won"]
    async with unit_of_work(session_factory) as session:
        stored = await session.get(Customer, customer.id)
    assert stored is not None and stored.version == 2
    winner = "机械" if outcomes[0] == "won" else "纺织"
    assert stored.industry == winner
    updates = [h for h in await _history(session_factory, keyring, customer.id) if h[0] == "update"]
    assert updates == [("update", None, {"industry": [None, winner]})]


async def test_two_proposals_of_one_field_at_once_file_one_review(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    owner = await _staff(session_factory, 1, Role.salesperson, "East")
    manager = await _staff(session_factory, 2, Role.manager, "East")
    customer = await _customer(session_factory, keyring, owner, "approved")
    assert customer.id is not None

    async def propose(actor: Staff, value: str) -> str:
        assert customer.id is not None
        try:
            await _edit(session_factory, keyring, actor, customer.id, {"industry": value})
        except Refused as refusal:
            return refusal.code
        return "filed"

    outcomes = await asyncio.gather(propose(owner, "机械"), propose(manager, "纺织"))
    assert sorted(outcomes) == ["change_pending", "filed"]
    async with unit_of_work(session_factory) as session:
        filed = (await session.exec(select(Review).where(Review.kind == "customer_change"))).all()
    assert len(filed) == 1
