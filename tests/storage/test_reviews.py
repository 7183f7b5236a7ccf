"""Deciding reviews in the database: once, by the right person, with history and audit."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from storage import audit, changes, reviews, vault
from storage import customers as customer_store
from storage import staff as staff_store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.errors import Refused
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    Review,
    ReviewKind,
    Staff,
    Team,
)
from storage.reviews import AlreadyDecided
from storage.types import utcnow
from tests.conftest import IS_POSTGRES

RACES = 50


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([os.urandom(32)])


@dataclass
class Company:
    """A few people in two teams, and the means to file customers."""

    sessions: SessionFactory
    keyring: Keyring
    staff: dict[str, Staff]

    async def customer(self, owner: str = "li", name: str = "杭州明远机械有限公司") -> Customer:
        async with unit_of_work(self.sessions) as session:
            return await customer_store.create_customer(
                session,
                keyring=self.keyring,
                actor=self.staff[owner],
                values={
                    "kind": "company",
                    "name": name,
                    "source": "visit",
                    "customer_class": "B",
                    "phones": ["+8613812345678"],
                    "tax_no": "91350100M000100Y43",
                    "address": "杭州市西湖区文三路 100 号",
                },
            )

    async def review_of(self, customer: Customer) -> Review:
        async with unit_of_work(self.sessions) as session:
            review = await reviews.pending_review_of(session, customer_id=customer.id or 0)
        assert review is not None
        return review

    async def decide(
        self, who: str, review_id: int, approve: bool = True, reason: str | None = None
    ) -> reviews.Decision:
        async with unit_of_work(self.sessions) as session:
            return await reviews.decide(
                session,
                keyring=self.keyring,
                actor=self.staff[who],
                review_id=review_id,
                approve=approve,
                reason=reason,
            )

    async def get(self, model: Any, row_id: int) -> Any:
        async with unit_of_work(self.sessions) as session:
            return await session.get(model, row_id)

    async def audit_actions(self) -> list[str]:
        async with unit_of_work(self.sessions) as session:
            rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
            assert (await audit.verify_chain(session)).ok
        return [r.action for r in rows]

    async def history(self, customer_id: int) -> list[ChangeRecord]:
        async with unit_of_work(self.sessions) as session:
            query = (
                select(ChangeRecord)
                .where(ChangeRecord.customer_id == customer_id)
                .order_by(col(ChangeRecord.id))
            )
            return list((await session.exec(query)).all())


@pytest.fixture
async def company(session_factory: SessionFactory, keyring: Keyring) -> Company:
    people = {
        "li": ("salesperson", "East"),
        "zhao": ("salesperson", "East"),
        "chen": ("manager", "East"),
        "zhou": ("manager", "East"),
        "wu": ("manager", "West"),
        "boss": ("admin", None),
        "boss2": ("admin", None),
    }
    staff: dict[str, Staff] = {}
    async with unit_of_work(session_factory) as session:
        for n, (name, (role, team)) in enumerate(people.items()):
            team_id = None
            if team:
                team_id = (await staff_store.get_or_create_team(session, team, actor=None)).id
            row = Staff(telegram_id=800_000 + n, display_name=name, role=role, team_id=team_id)
            session.add(row)
            await session.flush()
            staff[name] = row
    return Company(session_factory, keyring, staff)


# ---------------------------------------------------------------------------------------------
# approving and rejecting a new customer


async def test_a_manager_approves_a_new_customer(company: Company) -> None:
    customer = await company.customer()
    review = await company.review_of(customer)
    decision = await company.decide("chen", review.id or 0)
    assert decision.approved and decision.kind == ReviewKind.customer_new
    assert [p.name for p in decision.tell] == ["li"]
    row = await company.get(Customer, customer.id or 0)
    assert row.status == "approved" and row.approved_at is not None
    assert row.version == customer.version + 1
    decided = await company.get(Review, review.id or 0)
    assert (decided.status, decided.decided_by, decided.version) == (
        "approved",
        company.staff["chen"].id,
        2,
    )
    assert decided.decided_at is not None and decided.reason is None
    history = await company.history(customer.id or 0)
    assert [(h.action, h.review_id) for h in history] == [
        ("create", None),
        ("approve", review.id),
    ]
    assert history[-1].changed_by == company.staff["chen"].id
    assert (await company.audit_actions())[-1] == "review.approve"


async def test_a_rejection_needs_a_reason_and_keeps_it(company: Company) -> None:
    customer = await company.customer()
    review = await company.review_of(customer)
    before = await company.audit_actions()
    for blank in (None, "", "   \n "):
        with pytest.raises(Refused) as refused:
            await company.decide("chen", review.id or 0, approve=False, reason=blank)
        assert refused.value.code == "reason_required"
    with pytest.raises(Refused) as refused:
        await company.decide("chen", review.id or 0, approve=False, reason="x" * 501)
    assert refused.value.code == "reason_too_long"
    assert (await company.get(Review, review.id or 0)).status == "pending"
    assert await company.audit_actions() == before  # nothing written

    await company.decide("chen", review.id or 0, approve=False, reason="  电话号码不对  ")
    decided = await company.get(Review, review.id or 0)
    assert (decided.status, decided.reason) == ("rejected", "电话号码不对")
    assert (await company.get(Customer, customer.id or 0)).status == "rejected"
    assert [h.action for h in await company.history(customer.id or 0)] == ["create", "reject"]
    assert (await company.audit_actions())[-1] == "review.reject"


async def test_who_may_decide(company: Company) -> None:
    customer = await company.customer()
    review_id = (await company.review_of(customer)).id or 0
    for who, code in (
        ("li", "not_allowed"),  # the salesperson who submitted it
        ("zhao", "not_allowed"),  # a colleague in the same team
        ("wu", "not_allowed"),  # a manager of another team
    ):
        with pytest.raises(Refused) as refused:
            await company.decide(who, review_id)
        assert refused.value.code == code, who
    with pytest.raises(Refused) as refused:
        await company.decide("chen", 999_999)
    assert refused.value.code == "not_found"
    # an admin decides any team's submission
    assert (await company.decide("boss", review_id)).approved


async def test_nobody_decides_their_own_submission(company: Company) -> None:
    by_manager = await company.customer(owner="chen", name="A")
    by_admin = await company.customer(owner="boss", name="B")
    for who, customer in (("chen", by_manager), ("boss", by_admin)):
        review_id = (await company.review_of(customer)).id or 0
        with pytest.raises(Refused) as refused:
            await company.decide(who, review_id)
        assert refused.value.code == "own_submission"
    # another manager of the team, and another admin, may
    assert (await company.decide("zhou", (await company.review_of(by_manager)).id or 0)).approved
    assert (await company.decide("boss2", (await company.review_of(by_admin)).id or 0)).approved


async def test_a_deactivated_manager_decides_nothing(company: Company) -> None:
    customer = await company.customer()
    company.staff["chen"].active = False
    with pytest.raises(Refused) as refused:
        await company.decide("chen", (await company.review_of(customer)).id or 0)
    assert refused.value.code == "not_allowed"


async def test_a_second_decision_is_told_who_decided_and_when(company: Company) -> None:
    customer = await company.customer()
    review_id = (await company.review_of(customer)).id or 0
    await company.decide("chen", review_id, approve=False, reason="重复录入")
    for approve in (True, False):
        with pytest.raises(AlreadyDecided) as refused:
            await company.decide("zhou", review_id, approve=approve, reason="again")
        assert refused.value.code == "already_decided"
        assert (refused.value.status, refused.value.decider_name) == ("rejected", "chen")
        assert refused.value.decided_at is not None
    assert [h.action for h in await company.history(customer.id or 0)] == ["create", "reject"]


# ---------------------------------------------------------------------------------------------
# exactly once, under concurrency


async def _race(
    company: Company, review_id: int, contenders: list[tuple[str, bool]]
) -> list[reviews.Decision | Refused]:
    async def one(who: str, approve: bool) -> reviews.Decision | Refused:
        try:
            return await company.decide(who, review_id, approve=approve, reason="不符合要求")
        except Refused as refused:
            return refused

    return list(await asyncio.gather(*(one(w, a) for w, a in contenders)))


@pytest.mark.parametrize("mix", ["approve_approve", "approve_reject"])
async def test_concurrent_decisions_give_exactly_one(company: Company, mix: str) -> None:
    """Two managers deciding the same review at the same moment, many times over."""
    contenders = [("chen", True), ("zhou", mix == "approve_approve")]
    for n in range(RACES):
        customer = await company.customer(name=f"Race {n}")
        review_id = (await company.review_of(customer)).id or 0
        results = await _race(company, review_id, contenders)
        won = [r for r in results if isinstance(r, reviews.Decision)]
        lost = [r for r in results if isinstance(r, Refused)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], AlreadyDecided), lost[0].code
        row = await company.get(Review, review_id)
        assert lost[0].decider_name == next(
            name for name, s in company.staff.items() if s.id == row.decided_by
        )
        assert row.version == 2
        expected = "approved" if won[0].approved else "rejected"
        assert (await company.get(Customer, customer.id or 0)).status == expected
        decisions = [
            h.action for h in await company.history(customer.id or 0) if h.action != "create"
        ]
        assert decisions == ["approve" if won[0].approved else "reject"]
    actions = await company.audit_actions()
    assert actions.count("review.approve") + actions.count("review.reject") == RACES


async def test_a_decision_waiting_on_another_transaction_loses(company: Company) -> None:
    """The loser read `pending` (PostgreSQL) or queued at BEGIN (SQLite) while the winner held
    its transaction open: the database, not memory, turns it away."""
    for n in range(10):
        customer = await company.customer(name=f"Slow {n}")
        review_id = (await company.review_of(customer)).id or 0
        decided = asyncio.Event()

        async def winner(review_id: int = review_id, decided: asyncio.Event = decided) -> None:
            async with unit_of_work(company.sessions) as session:
                await reviews.decide(
                    session,
                    keyring=company.keyring,
                    actor=company.staff["chen"],
                    review_id=review_id,
                    approve=True,
                )
                decided.set()
                await asyncio.sleep(0.05)  # still uncommitted while the other one tries

        async def loser(review_id: int = review_id, decided: asyncio.Event = decided) -> str:
            await decided.wait()
            try:
                await company.decide("zhou", review_id, approve=False, reason="no")
            except AlreadyDecided as refused:
                return refused.decider_name
            return "won"

        _, result = await asyncio.gather(winner(), loser())
        assert result == "chen"
        assert (await company.get(Review, review_id)).status == "approved"


# ---------------------------------------------------------------------------------------------
# changes and complaints


async def _approved(company: Company) -> Customer:
    customer = await company.customer()
    await company.decide("chen", (await company.review_of(customer)).id or 0)
    return await company.get(Customer, customer.id or 0)


async def _propose(company: Company, customer: Customer, values: dict[str, Any]) -> Review:
    async with unit_of_work(company.sessions) as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        result = await changes.edit_customer(
            session,
            keyring=company.keyring,
            actor=company.staff["li"],
            customer=row,
            version=row.version,
            values=values,
        )
        assert result.review_id is not None
        review = await session.get(Review, result.review_id)
    assert review is not None
    return review


async def test_a_change_applies_only_when_approved(company: Company) -> None:
    customer = await _approved(company)
    review = await _propose(
        company, customer, {"phones": ["+8613900001111"], "customer_class": "A"}
    )
    unchanged = await company.get(Customer, customer.id or 0)
    assert unchanged.customer_class == "B" and unchanged.version == customer.version
    async with unit_of_work(company.sessions) as session:
        shown = await reviews.view(
            session, keyring=company.keyring, actor=company.staff["chen"], review_id=review.id or 0
        )
        sealed = await customer_store.sealed_fields(session, company.keyring, unchanged)
    assert sealed["phones"] == ["+8613812345678"]
    assert shown is not None
    assert {(line.field, str(line.before), str(line.after)) for line in shown.lines} == {
        ("phones", "['138****5678']", "['139****1111']"),
        ("customer_class", "B", "A"),
    }

    await company.decide("chen", review.id or 0)
    applied = await company.get(Customer, customer.id or 0)
    assert applied.customer_class == "A"
    async with unit_of_work(company.sessions) as session:
        sealed = await customer_store.sealed_fields(session, company.keyring, applied)
    assert sealed["phones"] == ["+8613900001111"]
    actions = [(h.action, h.review_id) for h in await company.history(customer.id or 0)]
    assert actions[-3:] == [("propose", review.id), ("update", review.id), ("approve", review.id)]


async def test_two_changes_approved_at_once_both_apply(company: Company) -> None:
    """Different fields, different managers, the same moment: neither overwrites the other."""
    for n in range(10):
        customer = await _approved(company)
        first = await _propose(company, customer, {"customer_class": "A"})
        second = await _propose(company, customer, {"industry": f"机械 {n}"})
        results = await asyncio.gather(
            company.decide("chen", first.id or 0), company.decide("zhou", second.id or 0)
        )
        assert all(r.approved for r in results)
        row = await company.get(Customer, customer.id or 0)
        assert (row.customer_class, row.industry) == ("A", f"机械 {n}")
        assert row.version == customer.version + 2


async def test_a_rejected_change_leaves_the_approved_values(company: Company) -> None:
    customer = await _approved(company)
    review = await _propose(company, customer, {"customer_class": "D"})
    decision = await company.decide("zhou", review.id or 0, approve=False, reason="分类依据不足")
    assert [p.name for p in decision.tell] == ["li"]
    row = await company.get(Customer, customer.id or 0)
    assert (row.customer_class, row.status, row.version) == ("B", "approved", customer.version)
    assert [h.action for h in await company.history(customer.id or 0)][-2:] == [
        "propose",
        "reject",
    ]


async def _resolved_complaint(company: Company, customer: Customer) -> tuple[Complaint, Review]:
    """A complaint whose resolution awaits approval, entered directly."""
    now = utcnow()
    async with unit_of_work(company.sessions) as session:
        complaint = Complaint(
            complaint_no=f"TS-2026-{customer.id:06d}",
            customer_id=customer.id or 0,
            received_by=company.staff["li"].id or 0,
            received_at=now - timedelta(days=1),
            type="quality",
            severity="high",
            description="设备异响",
            handler_id=company.staff["zhao"].id,
            status="resolved",
            resolution="上门更换轴承",
            feedback="客户确认已恢复正常",
            feedback_at=now,
            due_at=now + timedelta(days=2),
        )
        session.add(complaint)
        await session.flush()
        review = Review(
            kind=ReviewKind.complaint_resolution,
            complaint_id=complaint.id,
            customer_id=customer.id,
            team_id=customer.team_id,
            submitted_by=company.staff["li"].id or 0,
        )
        session.add(review)
    return complaint, review


async def test_an_approved_resolution_closes_the_complaint(company: Company) -> None:
    customer = await _approved(company)
    complaint, review = await _resolved_complaint(company, customer)
    decision = await company.decide("chen", review.id or 0)
    assert sorted(p.name for p in decision.tell) == ["li", "zhao"]  # submitter and handler
    closed = await company.get(Complaint, complaint.id or 0)
    assert closed.status == "closed" and closed.closed_at is not None
    assert closed.approver_id == company.staff["chen"].id
    assert closed.feedback == "客户确认已恢复正常"
    history = await company.history(customer.id or 0)
    assert ("complaint", review.id) in {(h.entity, h.review_id) for h in history}
    assert "review.approve" in await company.audit_actions()


async def test_a_rejected_resolution_reopens_the_complaint(company: Company) -> None:
    customer = await _approved(company)
    complaint, review = await _resolved_complaint(company, customer)
    await company.decide("chen", review.id or 0, approve=False, reason="需要客户书面确认")
    reopened = await company.get(Complaint, complaint.id or 0)
    assert reopened.status == "reopened" and reopened.closed_at is None
    assert (await company.get(Review, review.id or 0)).reason == "需要客户书面确认"


async def test_a_review_whose_record_moved_on_cannot_be_decided(company: Company) -> None:
    customer = await _approved(company)
    complaint, review = await _resolved_complaint(company, customer)
    async with unit_of_work(company.sessions) as session:
        row = await session.get(Complaint, complaint.id)
        assert row is not None
        row.status = "in_progress"
        session.add(row)
    with pytest.raises(Refused) as refused:
        await company.decide("chen", review.id or 0)
    assert refused.value.code == "subject_changed"
    assert (await company.get(Review, review.id or 0)).status == "pending"


async def test_a_refusal_while_applying_leaves_nothing_written(company: Company) -> None:
    """The application refusing after the decision was taken takes the decision back too."""
    customer = await _approved(company)
    async with unit_of_work(company.sessions) as session:  # a change that clears the name
        review = Review(
            kind=ReviewKind.customer_change,
            customer_id=customer.id,
            team_id=customer.team_id,
            submitted_by=company.staff["li"].id or 0,
        )
        session.add(review)
        await session.flush()
        key = await vault.data_key(session, company.keyring, customer.id or 0)
        review.changes_sealed = vault.seal(
            key, {"name": [customer.name, None]}, table="reviews", row_id=review.id or 0
        )
        session.add(review)
    before = await company.audit_actions()
    async with unit_of_work(company.sessions) as session:
        with pytest.raises(Refused) as refused:
            await reviews.decide(
                session,
                keyring=company.keyring,
                actor=company.staff["chen"],
                review_id=review.id or 0,
                approve=True,
            )
        # the caller may go on and commit: only what it writes itself is kept
        await reviews.record_refusal(
            session,
            actor=company.staff["chen"],
            code=refused.value.code,
            purpose="approve",
            entity_id=review.id,
        )
    assert refused.value.code == "incomplete"
    assert (await company.get(Review, review.id or 0)).status == "pending"
    assert (await company.get(Customer, customer.id or 0)).name == customer.name
    assert await company.audit_actions() == [*before, "review.refused"]
    assert [h.action for h in await company.history(customer.id or 0)] == ["create", "approve"]


# ---------------------------------------------------------------------------------------------
# submitting again, where notices go, the queue


async def test_a_rejected_customer_is_resubmitted_once(company: Company) -> None:
    customer = await company.customer()
    first = await company.review_of(customer)
    await company.decide("chen", first.id or 0, approve=False, reason="缺少税号")

    async def resubmit(who: str) -> Review | None:
        async with unit_of_work(company.sessions) as session:
            return await reviews.resubmit(
                session,
                keyring=company.keyring,
                actor=company.staff[who],
                customer_id=customer.id or 0,
            )

    assert await resubmit("wu") is None  # another team's manager may not even see it
    assert (await company.audit_actions())[-1] == "access.denied"
    again = await resubmit("li")
    assert again is not None and again.id != first.id and again.status == "pending"
    with pytest.raises(Refused) as refused:
        await resubmit("li")  # a double tap
    assert refused.value.code == "not_rejected"
    assert (await company.get(Customer, customer.id or 0)).status == "pending"
    history = [(h.action, h.review_id) for h in await company.history(customer.id or 0)]
    assert history == [("create", None), ("reject", first.id), ("submit", again.id)]
    assert (await company.decide("zhou", again.id or 0)).approved


async def test_notices_go_to_the_teams_managers_else_the_admins(company: Company) -> None:
    async def people(customer: Customer) -> tuple[int | None, list[str]]:
        review = await company.review_of(customer)
        async with unit_of_work(company.sessions) as session:
            found = await reviews.route(session, review_id=review.id or 0)
        return found.group_chat_id, [p.name for p in found.people]

    assert await people(await company.customer()) == (None, ["chen", "zhou"])
    # a manager's own submission goes to the other manager only
    assert await people(await company.customer(owner="chen", name="X")) == (None, ["zhou"])
    async with unit_of_work(company.sessions) as session:
        for name in ("chen", "zhou"):
            row = await session.get(Staff, company.staff[name].id)
            assert row is not None
            row.active = False
            session.add(row)
    # no active manager left: the admins
    assert await people(await company.customer(name="Y")) == (None, ["boss", "boss2"])
    # an admin's own submission: the other admin
    assert await people(await company.customer(owner="boss", name="Z")) == (None, ["boss2"])
    async with unit_of_work(company.sessions) as session:
        team = await session.get(Team, company.staff["li"].team_id)
        assert team is not None
        team.manager_chat_id = -100_42
        session.add(team)
    assert await people(await company.customer(name="W")) == (-100_42, [])


async def test_the_queue_is_the_teams_oldest_first_in_pages(company: Company) -> None:
    east = [await company.customer(name=f"E{n}") for n in range(7)]
    west_sales = Staff(
        telegram_id=899_999,
        display_name="xu",
        role="salesperson",
        team_id=company.staff["wu"].team_id,
    )
    async with unit_of_work(company.sessions) as session:
        session.add(west_sales)
    company.staff["xu"] = west_sales
    await company.customer(owner="xu", name="W0")
    await company.decide("chen", (await company.review_of(east[0])).id or 0)

    async def queue(who: str, page: int = 0) -> reviews.QueuePage:
        async with unit_of_work(company.sessions) as session:
            return await reviews.pending_queue(session, actor=company.staff[who], page=page)

    first = await queue("chen")
    assert (first.total, first.pages, first.page) == (6, 2, 0)
    assert [i.subject_name for i in first.items] == ["E1", "E2", "E3", "E4", "E5"]
    second = await queue("chen", 1)
    assert [i.subject_name for i in second.items] == ["E6"]
    assert (await queue("chen", 99)).page == 1  # past the end: the last page
    assert [i.subject_name for i in (await queue("wu")).items] == ["W0"]
    assert (await queue("boss")).total == 7
    with pytest.raises(Refused):
        await queue("li")


async def test_cards_mask_sensitive_values(company: Company) -> None:
    customer = await company.customer()
    review_id = (await company.review_of(customer)).id or 0
    async with unit_of_work(company.sessions) as session:
        short = await reviews.notice_view(session, keyring=company.keyring, review_id=review_id)
        full = await reviews.view(
            session, keyring=company.keyring, actor=company.staff["chen"], review_id=review_id
        )
        refused = await reviews.view(
            session, keyring=company.keyring, actor=company.staff["wu"], review_id=review_id
        )
    assert short is not None and full is not None and refused is None
    shown = {line.field: line.after for line in full.lines}
    assert shown["phones"] == ["138****5678"]
    assert shown["tax_no"] == "**** 0Y43"
    assert shown["address"] == "杭******"
    assert "address" not in {line.field for line in short.lines}  # the notice is short
    assert full.viewer_may_decide and not short.viewer_may_decide
    assert (await company.audit_actions())[-1] == "access.denied"


async def test_postgres_or_sqlite_is_what_we_think(company: Company) -> None:
    async with unit_of_work(company.sessions) as session:
        assert (session.get_bind().dialect.name == "postgresql") == IS_POSTGRES
