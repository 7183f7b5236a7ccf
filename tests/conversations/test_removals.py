"""Removing a complaint (issue 11 item 7): a manager of the team or an admin asks with a reason,
a second person decides in review; approval erases the complaint for good (the ledger keeps it
erased across restored backups), history keeps only that it was removed."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.context import Services
from storage import complaints, vault
from storage.db import unit_of_work
from storage.erasure_ledger import Ledger
from storage.models import AuditEntry, ChangeRecord, Complaint, Customer, Review, Staff
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.field_helpers import all_rows, customer_of, denied, field_world, restart
from tests.auxil.flow_helpers import draft_of, labels, question
from tests.auxil.record_helpers import card
from tests.auxil.world import World

REASON = "误重复录入,与另一条投诉为同一事件"
APPROVED_BY_ZHOU = "✅ 已由 Zhou 审核通过"


def detail(entry: AuditEntry) -> dict[str, Any]:
    return json.loads(entry.detail) if isinstance(entry.detail, str) else dict(entry.detail or {})


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


@pytest.fixture
def ledger(services: Services, tmp_path: Path) -> Ledger:
    """The erasure ledger where the bot keeps it in the tests (tmp_path/erasures.log)."""
    return Ledger(tmp_path / "erasures.log", services.keyring)


async def log_complaint(
    world: World, by: Person, text: str = "3 台设备交货晚了两周", customer: Customer | None = None
) -> Complaint:
    """A complaint about 明远 (or `customer`), logged by `by` through storage (its handler)."""
    actor = await staff_of(world.services.sessions, by)
    async with unit_of_work(world.services.sessions) as session:
        if customer is None:
            customer = (await session.exec(select(Customer).order_by(col(Customer.id)))).first()
        assert customer is not None
        return await complaints.log_complaint(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=customer.id or 0,
            values={
                "channel": "phone",
                "complaint_type": "delivery",
                "severity": "critical",
                "description": text,
                "handler_id": None,
            },
            now=world.services.clock(),
            due_hours=world.services.settings.complaint_due_hours,
        )


async def office(world: World, language: str = "zh") -> dict[str, Person]:
    """East: Li (salesperson, owns 明远), Chen and Zhou (managers); West: Wu (manager)."""
    people = {
        "li": await world.member("salesperson", "East", "Li", language),
        "chen": await world.member("manager", "East", "Chen", language),
        "zhou": await world.member("manager", "East", "Zhou", language),
        "wu": await world.member("manager", "West", "Wu", language),
    }
    if language != "zh":  # what /language stores; notices are written in it
        async with unit_of_work(world.services.sessions) as session:
            for staff in (await session.exec(select(Staff))).all():
                staff.language = language
                session.add(staff)
    await customer_of(world, people["li"])
    return people


async def open_complaint(person: Person, complaint_id: int) -> dict[str, Any]:
    await person.press_data(card(person), f"cx:{complaint_id}:v")
    return copy.deepcopy(person.last_message())


def review_cards(world: World, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(chat_id) if str(m.get("text", "")).startswith("🔔")]


async def ask_removal(world: World, by: Person, complaint: Complaint, reason: str) -> None:
    """From the complaint's card: Remove, and the reason."""
    shown = await open_complaint(by, complaint.id or 0)
    await by.press("🗑", shown)
    await by.send(reason)


async def removal_review(world: World) -> Review:
    rows = [r for r in await all_rows(world, Review) if r.kind == "complaint_removal"]
    assert rows, "no removal review"
    return rows[-1]


async def audit_of(world: World, action: str) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        )
        return list(rows.all())


async def complaint_history(world: World, customer_id: int) -> list[tuple[ChangeRecord, Any]]:
    """The complaint lines of the customer's history, each with its values opened (None: none)."""
    async with unit_of_work(world.services.sessions) as session:
        rows = (
            await session.exec(
                select(ChangeRecord)
                .where(ChangeRecord.customer_id == customer_id, ChangeRecord.entity == "complaint")
                .order_by(col(ChangeRecord.id))
            )
        ).all()
        key = await vault.data_key(session, world.services.keyring, customer_id)
    return [(r, vault.open_change(key, r)) for r in rows]


# ---------------------------------------------------------------------------------------------
# the happy paths


async def test_a_manager_asks_another_approves_and_the_complaint_is_erased(
    world: World, ledger: Ledger
) -> None:
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li)
    customer_id = complaint.customer_id
    assert [r.action for r, diff in await complaint_history(world, customer_id) if diff] == [
        "create"
    ]

    # the salesperson is not offered Remove; a manager of the team is
    assert "🗑 删除投诉" not in labels(await open_complaint(li, complaint.id or 0))
    shown = await open_complaint(chen, complaint.id or 0)
    assert "🗑 删除投诉" in labels(shown)
    await chen.press("🗑 删除投诉", shown)
    assert question(chen).startswith("为什么要删除投诉 TS-2026-000001(误录、重复、当事人要求删除)?")
    assert "✖ 取消" in labels(chen.last_message())
    await chen.send(REASON)
    assert chen.last_text() == (
        "🗑 已提交删除投诉 TS-2026-000001 的申请,将由团队经理或管理员审核,结果会通知您。"
    )
    review = await removal_review(world)
    assert (review.status, review.complaint_id, review.request_reason) == (
        "pending",
        complaint.id,
        REASON,
    )
    assert review_cards(world, chen.id) == []  # the requester is not asked to decide
    [notice] = review_cards(world, zhou.id)
    text = notice["text"]
    assert text.startswith("🔔 审核 · 删除投诉\nTS-2026-000001 · 杭州明远机械有限公司")
    for line in (f"申请理由:{REASON}", "• 投诉内容: 3 台设备交货晚了两周", "⏳ 等待审核"):
        assert line in text, text
    assert ledger.read()[0] == []  # nothing erased before the decision

    await zhou.press("通过", notice)
    assert await all_rows(world, Complaint) == []
    review = await removal_review(world)
    assert review.status == "approved" and review.complaint_id is None
    [edited] = review_cards(world, zhou.id)
    assert edited["text"].startswith("🔔 审核 · 删除投诉\nTS-2026-000001 · 杭州明远机械有限公司")
    assert "✅ 已由 Zhou 审核通过" in edited["text"] and "reply_markup" not in edited
    assert "3 台设备交货晚了两周" not in edited["text"]
    assert chen.last_text() == (
        "✅ 删除投诉 TS-2026-000001 · 杭州明远机械有限公司 的申请已由 Zhou 审核通过:"
        "投诉内容已永久清除,变更记录只保留“已删除”这一事实。"
    )

    # history: that it was asked for and removed, by whom; no value of it readable any more
    lines = await complaint_history(world, customer_id)
    assert [r.action for r, _ in lines] == ["create", "remove_request", "remove"]
    assert all(diff is None and r.diff_sealed is None for r, diff in lines)
    await chen.press_data(card(chen), f"ch:{customer_id}")
    history = chen.last_text()
    assert "Zhou · 投诉 · 删除\n  (已删除:不保留其内容)" in history, history
    assert "Chen · 投诉 · 申请删除\n  ✅ Zhou 审核通过" in history, history
    assert "Li · 投诉 · 新建\n  (该记录删除时,其内容已一并清除)" in history, history
    assert "交货晚了两周" not in history

    [removed] = await audit_of(world, "complaint.removed")
    assert detail(removed)["complaint_no"] == "TS-2026-000001"
    assert detail(removed)["review_id"] == review.id
    assert REASON not in str(detail(removed))
    entries, _head = ledger.read()
    assert [(e.kind, e.record_id, e.number) for e in entries] == [
        ("complaint", complaint.id, "TS-2026-000001")
    ]

    # the number is never given again
    again = await log_complaint(world, li, "另一件事")
    assert again.complaint_no == "TS-2026-000002"


async def test_in_english_a_removal_is_declined_and_the_complaint_stays(world: World) -> None:
    people = await office(world, "en")
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li)
    shown = await open_complaint(chen, complaint.id or 0)
    assert "🗑 Remove complaint" in labels(shown)
    await chen.press("🗑 Remove complaint", shown)
    assert question(chen).startswith("Why should complaint TS-2026-000001 be removed")
    await chen.send("Entered twice by mistake")
    assert chen.last_text().startswith("🗑 Removal of complaint TS-2026-000001 requested.")
    [notice] = review_cards(world, zhou.id)
    assert notice["text"].startswith("🔔 Review · complaint removal\nTS-2026-000001")
    await zhou.press("Reject", notice)
    await zhou.send("It is a different delivery")
    [row] = await all_rows(world, Complaint)
    assert row.description == "3 台设备交货晚了两周" and row.status == "open"
    assert (await removal_review(world)).status == "rejected"
    assert chen.last_text() == (
        "❌ The removal of complaint TS-2026-000001 · 杭州明远机械有限公司 was declined by Zhou; "
        "the complaint stays as it was.\nReason: It is a different delivery"
    )
    await chen.press_data(card(chen), f"ch:{complaint.customer_id}")
    history = chen.last_text()
    assert "Chen · Complaint · removal requested" in history
    assert "erased" not in history  # nothing was
    assert await audit_of(world, "complaint.removed") == []
    # and it may be asked again (a new request, a new review)
    shown = await open_complaint(chen, complaint.id or 0)
    assert "🗑 Remove complaint" in labels(shown)


async def test_an_admin_may_ask_and_a_manager_of_the_team_decides(world: World) -> None:
    people = await office(world)
    li, zhou = people["li"], people["zhou"]
    admin = world.admin()
    await admin.send("/start")
    complaint = await log_complaint(world, li)
    await ask_removal(world, admin, complaint, "客户依法要求删除该投诉信息")
    review = await removal_review(world)
    assert review.status == "pending"
    [notice] = review_cards(world, zhou.id)
    await zhou.press("通过", notice)
    assert await all_rows(world, Complaint) == []
    assert "已由 Zhou 审核通过" in admin.last_text()


# ---------------------------------------------------------------------------------------------
# who may not


async def test_the_requester_cannot_approve_their_own_request(world: World) -> None:
    people = await office(world)
    li, chen = people["li"], people["chen"]
    complaint = await log_complaint(world, li)
    await ask_removal(world, chen, complaint, REASON)
    review = await removal_review(world)
    await chen.press_data(card(chen), f"rv:a:{review.id}")
    assert chen.last_answer() == "不能审核自己提交的记录,需由其他经理或管理员审核。"
    assert (await removal_review(world)).status == "pending"
    assert len(await all_rows(world, Complaint)) == 1
    refused = await audit_of(world, "review.refused")
    assert [detail(e)["reason"] for e in refused] == ["own_submission"]


async def test_a_salesperson_or_another_teams_manager_forging_buttons_is_refused_and_audited(
    world: World,
) -> None:
    people = await office(world)
    li, chen, wu = people["li"], people["chen"], people["wu"]
    complaint = await log_complaint(world, li)
    before = len(await denied(world))

    await li.press_data(card(li), f"cx:{complaint.id}:rm")
    assert li.last_answer() == "只有该客户所在团队的经理或管理员可以申请删除投诉。"
    await wu.press_data(card(wu), f"cx:{complaint.id}:rm")
    assert wu.last_answer() == "这条投诉已不存在,或您无权查看。"
    assert await draft_of(world.services.sessions, li.id) is None
    assert await draft_of(world.services.sessions, wu.id) is None
    new = (await denied(world))[before:]
    assert [(e.entity, e.entity_id, detail(e)["purpose"]) for e in new] == [
        ("complaint", complaint.id, "complaint.remove_request"),
        ("complaint", complaint.id, "complaint.remove_request"),
    ]
    assert [e.actor_telegram_id for e in new] == [li.id, wu.id]

    # nor may they decide a request someone else made
    await ask_removal(world, chen, complaint, REASON)
    review = await removal_review(world)
    for person in (li, wu):
        await person.press_data(card(person), f"rv:a:{review.id}")
        assert person.last_answer() == "只有本团队的经理或管理员可以审核这条记录。"
    assert (await removal_review(world)).status == "pending"
    assert len(await all_rows(world, Complaint)) == 1
    review_denials = [e for e in await denied(world) if e.entity == "review"]
    assert {e.actor_telegram_id for e in review_denials} == {li.id, wu.id}


async def test_a_deactivated_manager_may_no_longer_ask(world: World) -> None:
    people = await office(world)
    li, chen = people["li"], people["chen"]
    complaint = await log_complaint(world, li)
    shown = await open_complaint(chen, complaint.id or 0)
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_of(world.services.sessions, chen)
        row = await session.get(type(staff), staff.id)
        assert row is not None
        row.active = False
        session.add(row)
    await chen.press("🗑 删除投诉", shown)
    assert await draft_of(world.services.sessions, chen.id) is None
    assert [r for r in await all_rows(world, Review) if r.kind == "complaint_removal"] == []


# ---------------------------------------------------------------------------------------------
# at once, stale, restarted


async def test_two_approvers_at_once_remove_it_once(world: World, ledger: Ledger) -> None:
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    admin = world.admin()
    await admin.send("/start")
    complaint = await log_complaint(world, li)
    await ask_removal(world, chen, complaint, REASON)
    review = await removal_review(world)
    [notice] = review_cards(world, zhou.id)
    await asyncio.gather(
        zhou.press("通过", notice), admin.press_data(card(admin), f"rv:a:{review.id}")
    )
    decided = await removal_review(world)
    assert decided.status == "approved"
    assert await all_rows(world, Complaint) == []
    assert len(await audit_of(world, "complaint.removed")) == 1
    assert len(await audit_of(world, "review.approve")) == 1
    assert [e.record_id for e in ledger.read()[0]] == [complaint.id]
    actions = [r.action for r, _ in await complaint_history(world, complaint.customer_id)]
    assert actions == ["create", "remove_request", "remove"]


async def test_stale_presses_after_the_removal_are_told_what_happened(world: World) -> None:
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li)
    old_card = await open_complaint(chen, complaint.id or 0)
    zhou_card = await open_complaint(zhou, complaint.id or 0)
    await chen.press("🗑 删除投诉", old_card)
    await chen.press("🗑 删除投诉", old_card)  # a second tap while the question is open
    assert chen.last_answer() == "正在等待您填写这次删除的原因:请回答上面的问题(或发送 /cancel)。"
    await chen.send(REASON)
    # a second request while one is pending: not offered, and refused when forged
    assert "🗑 删除投诉" not in labels(await open_complaint(zhou, complaint.id or 0))
    await zhou.press("🗑 删除投诉", zhou_card)
    assert zhou.last_answer() == (
        "这条投诉已有待审核的事项(处理结果或删除申请),请等该审核完成后再申请。"
    )
    [notice] = review_cards(world, zhou.id)
    stale = copy.deepcopy(notice)
    await zhou.press("通过", notice)
    await zhou.press("通过", stale)
    assert (zhou.last_answer() or "").startswith("这条记录已由 Zhou 于 ")
    await chen.press("🗑 删除投诉", old_card)
    assert chen.last_answer() == "这条投诉已不存在,或您无权查看。"
    await chen.press_data(card(chen), f"cx:{complaint.id}:v")
    assert chen.last_answer() == "找不到该记录,或您无权查看。"
    assert len(await audit_of(world, "complaint.removed")) == 1


async def test_a_removal_waits_for_a_pending_resolution(world: World) -> None:
    """A complaint whose resolution awaits approval is not removed from under its decider:
    Remove is not offered, a forged press is refused, and after the decision it may be."""
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li)
    actor = await staff_of(world.services.sessions, li)
    async with unit_of_work(world.services.sessions) as session:
        await complaints.resolve(
            session,
            keyring=world.services.keyring,
            actor=actor,
            complaint_id=complaint.id or 0,
            resolution="补发设备",
            feedback="客户接受",
            feedback_at=world.services.clock(),
            now=world.services.clock(),
        )
    shown = await open_complaint(chen, complaint.id or 0)
    assert "🗑 删除投诉" not in labels(shown)
    await chen.press_data(shown, f"cx:{complaint.id}:rm")
    assert chen.last_answer() == (
        "这条投诉已有待审核的事项(处理结果或删除申请),请等该审核完成后再申请。"
    )
    assert [r for r in await all_rows(world, Review) if r.kind == "complaint_removal"] == []
    # the resolution is decided (rejected: reopened), then the removal may be asked
    [resolution] = [r for r in await all_rows(world, Review) if r.kind == "complaint_resolution"]
    await zhou.press_data(card(zhou), f"rv:r:{resolution.id}")
    await zhou.send("请补充说明")
    await ask_removal(world, chen, complaint, REASON)
    assert (await removal_review(world)).status == "pending"


async def test_a_restart_in_the_middle_of_the_reason_keeps_the_question(world: World) -> None:
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li)
    shown = await open_complaint(chen, complaint.id or 0)
    await chen.press("🗑 删除投诉", shown)
    prompt = copy.deepcopy(chen.last_message())
    await restart(world)
    chen = world.person(chen.id, "Chen")
    zhou = world.person(zhou.id, "Zhou")
    await chen.send(REASON)
    assert chen.last_text().startswith("🗑 已提交删除投诉 TS-2026-000001 的申请")
    assert (await removal_review(world)).request_reason == REASON
    assert len(review_cards(world, zhou.id)) == 1
    # the old prompt's Cancel is spent: a stale prompt changes nothing
    await chen.press("✖ 取消", prompt)
    assert (await removal_review(world)).status == "pending"


async def test_cancel_leaves_nothing_behind(world: World) -> None:
    people = await office(world)
    li, chen = people["li"], people["chen"]
    complaint = await log_complaint(world, li)
    shown = await open_complaint(chen, complaint.id or 0)
    await chen.press("🗑 删除投诉", shown)
    await chen.press("✖ 取消")
    assert await draft_of(world.services.sessions, chen.id) is None
    await chen.send(REASON)
    assert [r for r in await all_rows(world, Review) if r.kind == "complaint_removal"] == []
    assert len(await all_rows(world, Complaint)) == 1


# ---------------------------------------------------------------------------------------------
# sizes


async def test_a_500_character_reason_fits_the_card_and_501_is_refused(world: World) -> None:
    people = await office(world)
    li, chen, zhou = people["li"], people["chen"], people["zhou"]
    complaint = await log_complaint(world, li, "很长的投诉内容" * 280)  # 1,960 characters
    shown = await open_complaint(chen, complaint.id or 0)
    await chen.press("🗑 删除投诉", shown)
    await chen.send("长" * 501)
    assert [r for r in await all_rows(world, Review) if r.kind == "complaint_removal"] == []
    assert await draft_of(world.services.sessions, chen.id) is not None
    reason = "因" * 500
    await chen.send(reason)
    assert (await removal_review(world)).request_reason == reason
    [notice] = review_cards(world, zhou.id)
    assert f"申请理由:{reason}" in notice["text"]  # whole, with the complaint's text cut
    assert len(notice["text"]) <= 4096
    await zhou.press("通过", notice)
    [edited] = review_cards(world, zhou.id)
    assert "✅ 已由 Zhou 审核通过" in edited["text"]
