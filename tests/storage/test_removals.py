"""A complaint's removal as records (storage.removals): asked by a manager of the team or an
admin with a reason, decided by someone else; approval erases it and writes the erasure ledger
only once the transaction commits; refusals leave their audit entry and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage import complaints, customers, erasure, removals, reviews
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.erasure_ledger import Ledger
from storage.errors import NotFound, Refused
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    KeyPerson,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
    Staff,
    Team,
)
from storage.staff import staff_by_telegram_id

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}
REASON = "Entered twice by mistake"


@dataclass
class Office:
    li: int  # telegram ids: salesperson, East (owns the customer)
    boss: int  # manager, East
    chief: int  # manager, East
    wu: int  # manager, West
    customer_id: int
    complaint_id: int


async def _staff(session, telegram_id: int) -> Staff:  # type: ignore[no-untyped-def]
    staff = await staff_by_telegram_id(session, telegram_id)
    assert staff is not None
    return staff


async def _office(sessions: SessionFactory, keyring: Keyring) -> Office:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        session.add_all(
            [
                Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
                Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=east.id),
                Staff(telegram_id=4, display_name="Chief", role=Role.manager, team_id=east.id),
                Staff(telegram_id=5, display_name="Wu", role=Role.manager, team_id=west.id),
            ]
        )
        await session.flush()
        li = await _staff(session, 1)
        customer = await customers.create_customer(
            session,
            keyring=keyring,
            actor=li,
            values={"kind": "company", "name": "杭州明远科技有限公司", "phones": ["13812345678"]},
        )
        customer.status = RecordStatus.approved
        session.add(customer)
        for review in (await session.exec(select(Review))).all():
            review.status = ReviewStatus.approved
            session.add(review)
        complaint = await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=li,
            customer_id=customer.id or 0,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": "high",
                "description": "Three machines delivered two weeks late",
                "handler_id": None,
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
    return Office(1, 3, 4, 5, customer.id or 0, complaint.id or 0)


async def _request(
    sessions: SessionFactory, keyring: Keyring, who: int, complaint_id: int, reason: str = REASON
) -> Review:
    """File the request as the handler does: a refusal is raised after its audit commits."""
    refused: Refused | None = None
    async with unit_of_work(sessions) as session:
        try:
            return await removals.request(
                session,
                keyring=keyring,
                actor=await _staff(session, who),
                complaint_id=complaint_id,
                reason=reason,
                now=NOW,
            )
        except Refused as error:
            refused = error
    raise refused


async def _decide(
    sessions: SessionFactory, keyring: Keyring, who: int, review_id: int, approve: bool = True
) -> None:
    async with unit_of_work(sessions) as session:
        await reviews.decide(
            session,
            keyring=keyring,
            actor=await _staff(session, who),
            review_id=review_id,
            approve=approve,
            reason=None if approve else "A different delivery",
        )


async def _denials(sessions: SessionFactory) -> list[AuditEntry]:
    async with unit_of_work(sessions) as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "access.denied", AuditEntry.entity == "complaint")
            .order_by(col(AuditEntry.id))
        )
        return list(rows.all())


async def test_approval_erases_and_the_ledger_line_follows_the_commit(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    office = await _office(session_factory, keyring)
    ledger = Ledger(tmp_path / "erasures.log", keyring)
    review = await _request(session_factory, keyring, office.boss, office.complaint_id)
    assert review.kind == ReviewKind.complaint_removal and review.request_reason == REASON

    with pytest.raises(RuntimeError):  # decided, then the transaction fails: nothing happened
        async with unit_of_work(session_factory) as session:
            await reviews.decide(
                session,
                keyring=keyring,
                actor=await _staff(session, office.chief),
                review_id=review.id or 0,
                approve=True,
            )
            assert await session.get(Complaint, office.complaint_id) is None
            raise RuntimeError("crash before commit")
    assert ledger.read()[0] == []
    async with unit_of_work(session_factory) as session:
        assert await session.get(Complaint, office.complaint_id) is not None

    with pytest.raises(Refused) as own:
        await _decide(session_factory, keyring, office.boss, review.id or 0)
    assert own.value.code == "own_submission"
    await _decide(session_factory, keyring, office.chief, review.id or 0)
    [entry] = ledger.read()[0]
    assert (entry.kind, entry.record_id, entry.customer_id, entry.number) == (
        "complaint",
        office.complaint_id,
        office.customer_id,
        "TS-2026-000001",
    )
    async with unit_of_work(session_factory) as session:
        assert await session.get(Complaint, office.complaint_id) is None
        decided = await session.get(Review, review.id)
        assert decided is not None and decided.status == ReviewStatus.approved
        assert await removals.removed_number(session, keyring, decided) == "TS-2026-000001"
        lines = (
            await session.exec(
                select(ChangeRecord)
                .where(ChangeRecord.entity == "complaint")
                .order_by(col(ChangeRecord.id))
            )
        ).all()
        assert [(line.action, line.diff_sealed) for line in lines] == [
            ("create", None),
            ("remove_request", None),
            ("remove", None),
        ]
        view = await reviews.notice_view(session, keyring=keyring, review_id=review.id or 0)
        assert view is not None and view.complaint_no == "TS-2026-000001" and view.lines == ()


async def test_rejection_leaves_the_complaint(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    office = await _office(session_factory, keyring)
    review = await _request(session_factory, keyring, office.boss, office.complaint_id)
    await _decide(session_factory, keyring, office.chief, review.id or 0, approve=False)
    async with unit_of_work(session_factory) as session:
        complaint = await session.get(Complaint, office.complaint_id)
        assert complaint is not None and complaint.description.startswith("Three machines")
    assert Ledger(tmp_path / "erasures.log", keyring).read()[0] == []


async def test_who_may_ask_and_what_is_refused(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    office = await _office(session_factory, keyring)
    with pytest.raises(Refused) as sales:
        await _request(session_factory, keyring, office.li, office.complaint_id)
    assert sales.value.code == "not_allowed"
    with pytest.raises(NotFound):
        await _request(session_factory, keyring, office.wu, office.complaint_id)
    with pytest.raises(NotFound):
        await _request(session_factory, keyring, office.boss, 9_999)
    assert [e.actor_telegram_id for e in await _denials(session_factory)] == [
        office.li,
        office.wu,
        office.boss,
    ]
    for reason, code in (("   ", "reason_required"), ("x" * 501, "reason_too_long")):
        with pytest.raises(Refused) as bad:
            await _request(session_factory, keyring, office.boss, office.complaint_id, reason)
        assert bad.value.code == code
    await _request(session_factory, keyring, office.boss, office.complaint_id, "x" * 500)
    with pytest.raises(Refused) as twice:
        await _request(session_factory, keyring, office.chief, office.complaint_id)
    assert twice.value.code == "under_review"
    async with unit_of_work(session_factory) as session:
        kinds = (
            await session.exec(select(Review.kind).where(Review.complaint_id.is_not(None)))
        ).all()  # type: ignore[union-attr]
    assert list(kinds) == [ReviewKind.complaint_removal]


async def test_a_pending_resolution_comes_first(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    office = await _office(session_factory, keyring)
    async with unit_of_work(session_factory) as session:
        await complaints.resolve(
            session,
            keyring=keyring,
            actor=await _staff(session, office.li),
            complaint_id=office.complaint_id,
            resolution="Sent a replacement",
            feedback="Customer accepted",
            feedback_at=NOW,
            now=NOW,
        )
    with pytest.raises(Refused) as pending:
        await _request(session_factory, keyring, office.boss, office.complaint_id)
    assert pending.value.code == "under_review"


async def test_an_archived_customers_complaints_are_not_removed(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    office = await _office(session_factory, keyring)
    review = await _request(session_factory, keyring, office.boss, office.complaint_id)
    async with unit_of_work(session_factory) as session:
        customer = await session.get(Customer, office.customer_id)
        assert customer is not None
        customer.status = RecordStatus.archived  # archived meanwhile (e.g. by the command line)
        session.add(customer)
    with pytest.raises(Refused) as moved:
        await _decide(session_factory, keyring, office.chief, review.id or 0)
    assert moved.value.code == "subject_changed"
    with pytest.raises(Refused) as archived:
        await _request(session_factory, keyring, office.chief, office.complaint_id)
    assert archived.value.code in ("archived", "under_review")


async def test_a_savepoint_is_not_the_commit(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    """Releasing a savepoint writes nothing; rolling one back drops only what it erased."""
    office = await _office(session_factory, keyring)
    ledger = Ledger(tmp_path / "erasures.log", keyring)
    async with unit_of_work(session_factory) as session:
        person = KeyPerson(customer_id=office.customer_id, name="王建国")
        session.add(person)
    async with unit_of_work(session_factory) as session:
        await erasure.erase_key_person(
            session, key_person_id=person.id or 0, customer_id=office.customer_id, now=NOW
        )
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await erasure.erase_complaint(session, complaint_id=office.complaint_id, now=NOW)
                raise RuntimeError("refused after the erasure")
        async with session.begin_nested():
            pass
        assert ledger.read()[0] == []  # released savepoints are not the commit
    assert [(e.kind, e.record_id) for e in ledger.read()[0]] == [("key_person", person.id)]
    async with unit_of_work(session_factory) as session:
        assert await session.get(Complaint, office.complaint_id) is not None
