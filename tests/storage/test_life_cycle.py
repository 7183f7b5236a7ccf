"""Archiving, reactivation and destruction as records (storage.life_cycle, storage.erasure,
storage.erasure_ledger): a request by one person, a decision by another; destruction wipes
every personal value and writes the ledger only once it commits; the ledger re-erases a copy
of the database from before the destruction, and refuses to be forged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage import (
    complaints,
    customers,
    drafts,
    erasure,
    key_persons,
    life_cycle,
    reviews,
    vault,
    visits,
)
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.erasure_ledger import Entry, Erased, Ledger, LedgerError
from storage.errors import NotFound, Refused
from storage.models import (
    Attachment,
    AuditEntry,
    BlindIndex,
    ChangeRecord,
    Complaint,
    Customer,
    DataKey,
    Draft,
    KeyPerson,
    RecordStatus,
    Reminder,
    ReminderStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
    Staff,
    Team,
    Visit,
)

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
DUE_HOURS = {"critical": 24, "high": 72, "medium": 168, "low": 336}
CYCLES = {"A": 7, "B": 14, "C": 30, "D": 60}


@dataclass
class Company:
    li: Staff  # salesperson, East: owns the customer
    zhao: Staff  # salesperson, East
    boss: Staff  # manager, East
    chief: Staff  # manager, East
    wu: Staff  # salesperson, West
    customer: Customer


def _ledger(tmp_path: Path, keyring: Keyring) -> Ledger:
    return Ledger(tmp_path / "erasures.log", keyring)  # where the session_factory fixture has it


async def _company(sessions: SessionFactory, keyring: Keyring) -> Company:
    async with unit_of_work(sessions) as session:
        east, west = Team(name="East"), Team(name="West")
        session.add_all([east, west])
        await session.flush()
        people = [
            Staff(telegram_id=1, display_name="Li", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=2, display_name="Zhao", role=Role.salesperson, team_id=east.id),
            Staff(telegram_id=3, display_name="Boss", role=Role.manager, team_id=east.id),
            Staff(telegram_id=4, display_name="Chief", role=Role.manager, team_id=east.id),
            Staff(telegram_id=5, display_name="Wu", role=Role.salesperson, team_id=west.id),
        ]
        session.add_all(people)
        await session.flush()
        customer = await customers.create_customer(
            session,
            keyring=keyring,
            actor=people[0],
            values={
                "kind": "company",
                "name": "杭州明远科技有限公司",
                "phones": ["13812345678"],
                "profile": "Makes valves in Hangzhou",
                "trade_notes": "Paid late in 2025",
            },
        )
        customer.status = RecordStatus.approved
        session.add(customer)
        for review in (await session.exec(select(Review))).all():
            review.status, review.decided_by = ReviewStatus.approved, people[2].id
            session.add(review)
    return Company(*people, customer)


async def _request(
    sessions: SessionFactory, actor: Staff, customer_id: int, kind: str, **kw: object
) -> Review:
    """File the request as a handler does: a refusal is raised after its audit commits."""
    refused: Refused | None = None
    async with unit_of_work(sessions) as session:
        try:
            return await life_cycle.request(
                session,
                actor=actor,
                customer_id=customer_id,
                kind=kind,
                reason=kw.pop("reason", "Cooperation ended in November"),  # type: ignore[arg-type]
                now=NOW,
                **kw,  # type: ignore[arg-type]
            )
        except Refused as error:
            refused = error
    raise refused


async def _decide(
    sessions: SessionFactory, keyring: Keyring, actor: Staff, review_id: int, approve: bool = True
) -> None:
    async with unit_of_work(sessions) as session:
        await reviews.decide(
            session,
            keyring=keyring,
            actor=actor,
            review_id=review_id,
            approve=approve,
            reason=None if approve else "Still buying",
        )


async def _customer(sessions: SessionFactory, customer_id: int) -> Customer:
    async with unit_of_work(sessions) as session:
        found = await session.get(Customer, customer_id)
    assert found is not None
    return found


async def test_the_owner_asks_a_manager_archives_and_reminders_stop(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    async with unit_of_work(session_factory) as session:
        session.add(
            Reminder(
                dedup_key=f"followup:customer:{cid}:1:p",
                kind="followup",
                subject_type="customer",
                subject_id=cid,
                recipient_id=company.li.id,
                due_at=NOW + timedelta(days=1),
            )
        )
    review = await _request(session_factory, company.li, cid, ReviewKind.archive)
    assert review.status == ReviewStatus.pending and review.request_reason
    with pytest.raises(Refused) as own:
        await _decide(session_factory, keyring, company.li, review.id or 0)
    assert own.value.code in ("own_submission", "not_allowed")
    await _decide(session_factory, keyring, company.boss, review.id or 0)
    archived = await _customer(session_factory, cid)
    assert archived.status == RecordStatus.archived and archived.archived_at is not None
    async with unit_of_work(session_factory) as session:
        reminder = (await session.exec(select(Reminder))).one()
        actions = (
            await session.exec(select(ChangeRecord.action).where(ChangeRecord.customer_id == cid))
        ).all()
    assert reminder.status == ReminderStatus.cancelled
    assert "archive_request" in actions and "archive" in actions


async def test_requests_are_refused_to_whom_they_do_not_belong(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    with pytest.raises(NotFound):  # another team's salesperson does not even learn it exists
        await _request(session_factory, company.wu, cid, ReviewKind.archive)
    with pytest.raises(NotFound):  # a teammate who does not own it sees it no more
        await _request(session_factory, company.zhao, cid, ReviewKind.archive)
    with pytest.raises(Refused) as owner_destroys:  # destruction is for managers and admins
        await _request(session_factory, company.li, cid, ReviewKind.destroy, pipl=True)
    assert owner_destroys.value.code == "not_allowed"
    with pytest.raises(Refused) as not_archived:
        await _request(session_factory, company.boss, cid, ReviewKind.destroy)
    assert not_archived.value.code == "wrong_status"
    with pytest.raises(Refused) as blank:
        await _request(session_factory, company.li, cid, ReviewKind.archive, reason="   ")
    assert blank.value.code == "reason_required"
    with pytest.raises(Refused) as long_reason:
        await _request(session_factory, company.li, cid, ReviewKind.archive, reason="x" * 501)
    assert long_reason.value.code == "reason_too_long"
    async with unit_of_work(session_factory) as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).all()
        assert len(denied) == 2
        assert (
            await session.exec(select(Review).where(Review.kind != ReviewKind.customer_new))
        ).all() == []


async def test_one_request_at_a_time_and_none_with_open_complaints(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    async with unit_of_work(session_factory) as session:
        await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=company.li,
            customer_id=cid,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": "high",
                "description": "late",
                "handler_id": company.li.id,
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
    with pytest.raises(Refused) as open_complaint:
        await _request(session_factory, company.li, cid, ReviewKind.archive)
    assert open_complaint.value.code == "open_complaints"
    async with unit_of_work(session_factory) as session:
        for complaint in (await session.exec(select(Complaint))).all():
            complaint.status = "closed"
            session.add(complaint)
    await _request(session_factory, company.li, cid, ReviewKind.archive)
    with pytest.raises(Refused) as twice:
        await _request(session_factory, company.boss, cid, ReviewKind.archive)
    assert twice.value.code == "under_review"


async def test_a_rejected_archive_leaves_the_customer_and_reactivation_brings_it_back(
    session_factory: SessionFactory, keyring: Keyring
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    first = await _request(session_factory, company.li, cid, ReviewKind.archive)
    await _decide(session_factory, keyring, company.boss, first.id or 0, approve=False)
    assert (await _customer(session_factory, cid)).status == RecordStatus.approved
    second = await _request(session_factory, company.boss, cid, ReviewKind.archive)
    await _decide(session_factory, keyring, company.chief, second.id or 0)
    assert (await _customer(session_factory, cid)).status == RecordStatus.archived
    back = await _request(session_factory, company.li, cid, ReviewKind.reactivate)
    await _decide(session_factory, keyring, company.chief, back.id or 0)
    again = await _customer(session_factory, cid)
    assert again.status == RecordStatus.approved and again.archived_at is None
    async with unit_of_work(session_factory) as session:
        decided = await session.get(Review, back.id)
    assert decided is not None and decided.decided_at is not None
    # due the day it is decided (the real clock, not the test's NOW: decide() reads utcnow)
    assert again.next_followup_on == decided.decided_at.date()


async def _fill(sessions: SessionFactory, keyring: Keyring, company: Company) -> None:
    """A key person, a visit with an attachment, a complaint, a change with history, a draft."""
    cid = company.customer.id or 0
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, cid)
        assert customer is not None
        await key_persons.add_key_person(
            session,
            keyring=keyring,
            actor=company.li,
            customer=customer,
            values={"kp_name": "王总", "kp_phones": ["13900001111"], "kp_notes": "likes tea"},
        )
        await visits.log_visit(
            session,
            keyring=keyring,
            actor=company.li,
            customer_id=cid,
            values={
                "kind": "on_site",
                "purpose": "Meet 王总 at his home on 5 West Lake Road",
                "discussion": "Budget",
                "location": {"latitude": 30.25, "longitude": 120.16, "accuracy": 5},
                "attachments": [{"kind": "photo", "file_id": "PHOTO-FILE-ID", "unique": "u1"}],
            },
            now=NOW,
            timezone="Asia/Shanghai",
            followup_cycles=CYCLES,
        )
        await complaints.log_complaint(
            session,
            keyring=keyring,
            actor=company.li,
            customer_id=cid,
            values={
                "channel": "phone",
                "complaint_type": "service",
                "severity": "low",
                "description": "王总 says the driver was rude",
                "handler_id": company.li.id,
            },
            now=NOW,
            due_hours=DUE_HOURS,
        )
        for complaint in (await session.exec(select(Complaint))).all():
            complaint.status = "closed"
            session.add(complaint)
        await drafts.save(
            session,
            keyring,
            company.li.id or 0,
            drafts.DraftState(flow="visit", step="purpose", data={"customer_id": cid}),
            now=NOW,
        )


async def _archived(sessions: SessionFactory, keyring: Keyring, company: Company) -> None:
    review = await _request(sessions, company.li, company.customer.id or 0, ReviewKind.archive)
    await _decide(sessions, keyring, company.boss, review.id or 0)


async def _assert_erased(sessions: SessionFactory, keyring: Keyring, customer_id: int) -> None:
    async with unit_of_work(sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        assert customer.status == RecordStatus.destroyed and customer.destroyed_at is not None
        assert customer.name == customer.customer_no and customer.name.startswith("KH-")
        assert customer.sealed is None and customer.profile is None
        assert customer.trade_notes is None
        key = (await session.exec(select(DataKey).where(DataKey.customer_id == customer_id))).one()
        assert key.wrapped is None
        with pytest.raises(vault.DataErased):
            await vault.data_key(session, keyring, customer_id)
        assert (await session.exec(select(KeyPerson))).all() == []
        assert (await session.exec(select(BlindIndex))).all() == []
        assert (await session.exec(select(Attachment))).all() == []
        for visit in (await session.exec(select(Visit))).all():
            assert (visit.purpose, visit.discussion, visit.latitude) == (None, None, None)
        for complaint in (await session.exec(select(Complaint))).all():
            assert complaint.description == "" and complaint.complaint_no
        history = (
            await session.exec(select(ChangeRecord).where(ChangeRecord.customer_id == customer_id))
        ).all()
        assert history and all(line.diff_sealed is None for line in history)
        assert (await session.exec(select(Draft))).all() == []


async def test_destruction_wipes_every_personal_value_and_is_ledgered_on_commit(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    await _fill(session_factory, keyring, company)
    await _archived(session_factory, keyring, company)
    review = await _request(
        session_factory, company.boss, cid, ReviewKind.destroy, reason="Retention expired"
    )
    with pytest.raises(Refused):  # the requester never decides it
        await _decide(session_factory, keyring, company.boss, review.id or 0)
    ledger = _ledger(tmp_path, keyring)
    assert ledger.read()[0] == []
    await _decide(session_factory, keyring, company.chief, review.id or 0)
    await _assert_erased(session_factory, keyring, cid)
    entries, head = ledger.read()
    assert [(e.kind, e.record_id, e.number) for e in entries] == [
        ("customer", cid, company.customer.customer_no)
    ]
    assert head.count == 1
    assert "明远" not in ledger.path.read_text(encoding="utf-8")
    async with unit_of_work(session_factory) as session:
        kept = await session.get(Review, review.id)
        destroyed = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.destroyed"))
        ).one()
    assert kept is not None and kept.request_reason == "Retention expired"
    assert kept.decided_by == company.chief.id and kept.submitted_by == company.boss.id
    assert json.loads(destroyed.detail or "{}")["key_persons"] == 1


async def test_a_destruction_that_rolls_back_writes_no_ledger_line(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with unit_of_work(session_factory) as session:
            await erasure.erase_customer(session, keyring, customer_id=cid, now=NOW)
            raise Boom
    assert _ledger(tmp_path, keyring).read()[0] == []
    assert (await _customer(session_factory, cid)).status == RecordStatus.approved


async def test_the_ledger_erases_a_database_from_before_the_destruction(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    """A restored backup from before: the data is all there, the ledger says it was destroyed."""
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    await _fill(session_factory, keyring, company)
    ledger = _ledger(tmp_path, keyring)
    ledger.append([Entry.of(Erased.customer, cid, cid, company.customer.customer_no, NOW)])
    other = Entry.of(Erased.customer, cid, cid, "KH-1999-000001", NOW)  # another installation's
    entries, _head = ledger.read()
    async with unit_of_work(session_factory) as session:
        again = await erasure.reapply(session, keyring, [*entries, other], now=NOW)
    assert again.customers == 1
    await _assert_erased(session_factory, keyring, cid)
    async with unit_of_work(session_factory) as session:
        assert (await erasure.reapply(session, keyring, entries, now=NOW)).total == 0
        reapplied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "erasure.reapplied"))
        ).all()
    assert len(reapplied) == 1


async def test_destroyed_customers_missing_from_the_ledger_are_written_at_start(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    async with unit_of_work(session_factory) as session:  # as if killed before the ledger line
        await erasure.erase_customer(session, keyring, customer_id=cid, now=NOW, ledger=False)
    ledger = _ledger(tmp_path, keyring)
    async with unit_of_work(session_factory) as session:
        assert await erasure.record_missing(session, ledger, ledger.read()[0]) == 1
    async with unit_of_work(session_factory) as session:
        assert await erasure.record_missing(session, ledger, ledger.read()[0]) == 0
    assert [e.record_id for e in ledger.read()[0]] == [cid]


def test_a_forged_altered_or_removed_ledger_line_is_refused(
    tmp_path: Path, keyring: Keyring
) -> None:
    ledger = Ledger(tmp_path / "erasures.log", keyring)
    ledger.append([Entry.of(Erased.customer, n, n, f"KH-2026-00000{n}", NOW) for n in (1, 2, 3)])
    header, *lines = ledger.path.read_text().splitlines()
    assert "KH-" not in header and len(lines) == 3

    forged = json.loads(lines[1])
    forged["record_id"] = 7  # destroy somebody else on the next restore
    ledger.path.write_text("\n".join([header, lines[0], json.dumps(forged), lines[2]]) + "\n")
    with pytest.raises(LedgerError, match="line 3"):
        ledger.read()

    ledger.path.write_text("\n".join([header, lines[0], lines[2]]) + "\n")  # customer 2 back
    with pytest.raises(LedgerError, match="chain"):
        ledger.read()

    ledger.path.write_text("\n".join(lines) + "\n")  # its key taken out
    with pytest.raises(LedgerError, match="header"):
        ledger.read()

    other_keys = Ledger(ledger.path, Keyring([b"k" * 32]))
    ledger.path.write_text("\n".join([header, *lines]) + "\n")
    with pytest.raises(LedgerError, match="not configured"):
        other_keys.read()

    ledger.path.write_text("\n".join([header, *lines]) + "\n" + lines[2][:20])  # a crash mid-line
    assert [e.record_id for e in ledger.read()[0]] == [1, 2, 3]
    ledger.append([Entry.of(Erased.key_person, 9, 1, None, NOW)])
    assert [e.record_id for e in ledger.read()[0]] == [1, 2, 3, 9]


def test_rotating_keys_rewraps_the_ledger_key_and_keeps_its_lines_and_head(
    tmp_path: Path, keyring: Keyring
) -> None:
    """After rotate-keys the old master key may be dropped: the ledger still verifies, and a
    backup's recorded head still matches (only the header line changed)."""
    ledger = Ledger(tmp_path / "erasures.log", keyring)
    ledger.append([Entry.of(Erased.customer, n, n, f"KH-2026-00000{n}", NOW) for n in (1, 2)])
    head = ledger.head()
    before = ledger.path.read_text().splitlines()
    new_key = b"n" * 32
    both = Keyring([new_key, keyring.current.secret])
    rotating = Ledger(ledger.path, both)
    assert rotating.needs_rewrap() and rotating.rewrap()
    assert not rotating.rewrap()  # nothing left to do
    after = ledger.path.read_text().splitlines()
    assert after[1:] == before[1:] and after[0] != before[0]

    only_new = Ledger(ledger.path, Keyring([new_key]))
    assert [e.record_id for e in only_new.read()[0]] == [1, 2]
    assert only_new.head() == head and only_new.reaches(head)
    only_new.append([Entry.of(Erased.complaint, 5, 1, "TS-2026-000005", NOW)])
    assert [e.record_id for e in only_new.read()[0]] == [1, 2, 5]
    with pytest.raises(LedgerError, match="not configured"):
        ledger.read()  # the old key alone no longer opens it


async def test_a_removed_key_person_is_erased_with_its_history_values(
    session_factory: SessionFactory, keyring: Keyring, tmp_path: Path
) -> None:
    company = await _company(session_factory, keyring)
    cid = company.customer.id or 0
    await _fill(session_factory, keyring, company)
    async with unit_of_work(session_factory) as session:
        person = (await session.exec(select(KeyPerson))).one()
        await erasure.erase_key_person(
            session, key_person_id=person.id or 0, customer_id=cid, now=NOW
        )
    async with unit_of_work(session_factory) as session:
        assert (await session.exec(select(KeyPerson))).all() == []
        lines = (
            await session.exec(
                select(ChangeRecord).where(
                    ChangeRecord.entity == "key_person", col(ChangeRecord.entity_id) == person.id
                )
            )
        ).all()
        assert lines and all(line.diff_sealed is None for line in lines)
        assert (
            await session.exec(select(BlindIndex).where(col(BlindIndex.key_person_id).is_not(None)))
        ).all() == []
    assert [(e.kind, e.record_id) for e in _ledger(tmp_path, keyring).read()[0]] == [
        ("key_person", person.id)
    ]
