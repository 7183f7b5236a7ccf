"""An archived customer is read-only in storage, whichever way a write comes: a complaint
logged while the archive request waited stops the decision, and complaint work, visits, edits,
key persons and the pool refuse an archived customer (storage.life_cycle, storage.complaints,
storage.visits, storage.changes, storage.key_persons, storage.pool)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage import changes, complaints, key_persons, life_cycle_offers, pool, visits
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import NotFound, Refused
from storage.models import (
    Complaint,
    ComplaintStatus,
    Customer,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)
from tests.storage.test_life_cycle import (
    DUE_HOURS,
    NOW,
    _company,
    _customer,
    _decide,
    _request,
)


async def _log_complaint(sessions: SessionFactory, keyring: Keyring, actor: Staff, cid: int) -> int:
    async with unit_of_work(sessions) as session:
        complaint = await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=actor,
            customer_id=cid,
            values={
                "complaint_type": "quality",
                "severity": "high",
                "description": "Valve leaks",
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
    assert complaint.id is not None
    return complaint.id


async def test_a_complaint_logged_while_the_request_waited_stops_the_archiving(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    review = await _request(session_factory, company.li, cid, ReviewKind.archive)
    complaint_id = await _log_complaint(session_factory, keyring, company.li, cid)
    with pytest.raises(Refused) as refused:
        await _decide(session_factory, keyring, company.boss, review.id or 0)
    assert refused.value.code == "open_complaints"
    assert (await _customer(session_factory, cid)).status == RecordStatus.approved
    async with unit_of_work(session_factory) as session:
        kept = await session.get(Review, review.id)
        assert kept is not None and kept.status == ReviewStatus.pending  # nothing was kept
        complaint = await session.get(Complaint, complaint_id)
        assert complaint is not None
        complaint.status = ComplaintStatus.closed
        session.add(complaint)
    await _decide(session_factory, keyring, company.boss, review.id or 0)
    assert (await _customer(session_factory, cid)).status == RecordStatus.archived


async def test_every_write_refuses_an_archived_customer(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    complaint_id = await _log_complaint(session_factory, keyring, company.li, cid)
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, cid)
        assert customer is not None
        customer.status = RecordStatus.archived  # as if archived before the rule held
        customer.pooled_at = NOW  # and left in the pool
        session.add(customer)

    async with unit_of_work(session_factory) as session:
        with pytest.raises(Refused) as work:
            await complaints.start_progress(
                session, keyring=keyring, actor=company.boss, complaint_id=complaint_id, now=NOW
            )
        assert work.value.code == "archived_work"
        with pytest.raises(Refused) as assign:
            await complaints.reassign(
                session,
                keyring=keyring,
                actor=company.boss,
                complaint_id=complaint_id,
                handler_id=company.zhao.id or 0,
                now=NOW,
            )
        assert assign.value.code == "archived_work"
        with pytest.raises(Refused) as visit:
            await visits.loggable_customer(
                session, actor=company.boss, customer_id=cid, purpose="visit.log"
            )
        assert visit.value.code == "archived"
        customer = await session.get(Customer, cid)
        assert customer is not None
        with pytest.raises(Refused) as edit:
            changes.edit_mode(customer)
        assert edit.value.code == "read_only"
        assert not key_persons.may_change(company.boss, customer)
        with pytest.raises(Refused) as person:
            await key_persons.add_key_person(
                session, keyring=keyring, actor=company.boss, customer=customer, values={}
            )
        assert person.value.code == "read_only"
    with pytest.raises(Refused) as logged:
        await _log_complaint(session_factory, keyring, company.boss, cid)
    assert logged.value.code == "archived"
    async with unit_of_work(session_factory) as session:
        with pytest.raises((Refused, NotFound)):
            await pool.claim(
                session,
                keyring,
                actor=company.zhao,
                customer_id=cid,
                now=NOW,
                timezone="Asia/Shanghai",
                limit=10,
            )
        found = (await session.exec(select(Complaint))).one()
        assert found.status == ComplaintStatus.open  # nothing changed


async def test_what_the_card_offers_of_the_life_cycle(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, cid)
        assert customer is not None
        owner = await life_cycle_offers.offers(session, actor=company.li, customer=customer)
        manager = await life_cycle_offers.offers(session, actor=company.boss, customer=customer)
        colleague = await life_cycle_offers.offers(session, actor=company.zhao, customer=customer)
    assert owner.kinds == (ReviewKind.archive,) and manager.kinds == (ReviewKind.archive,)
    assert colleague.kinds == ()
    review = await _request(session_factory, company.li, cid, ReviewKind.archive)
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, cid)
        assert customer is not None
        waiting = await life_cycle_offers.offers(session, actor=company.boss, customer=customer)
    assert waiting.kinds == () and waiting.pending == ReviewKind.archive
    await _decide(session_factory, keyring, company.boss, review.id or 0)
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, cid)
        assert customer is not None
        owner = await life_cycle_offers.offers(session, actor=company.li, customer=customer)
        manager = await life_cycle_offers.offers(session, actor=company.boss, customer=customer)
    assert owner.kinds == (ReviewKind.reactivate,)
    assert manager.kinds == (ReviewKind.reactivate, ReviewKind.destroy)
