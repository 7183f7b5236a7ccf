"""Managers review in chat: cards at once, Approve / Reject with a reason, /review, group chats.

Everything goes through updates, as managers and salespeople would press and type.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot import scheduler
from bot.context import BotContext
from bot.i18n import has_message
from conversations import review as review_chat
from storage import changes, reviews
from storage import customers as customer_store
from storage.db import unit_of_work
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    ComplaintType,
    Customer,
    Review,
    ReviewKind,
    Severity,
    Staff,
    Team,
)
from storage.staff import staff_by_telegram_id
from storage.types import utcnow
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import audit_actions, customers, labels, question, start_new_company
from tests.auxil.world import World, start_app

GROUP_ID = -100_555
RACES = 25  # the storage tests race 50 times per mix


# ---------------------------------------------------------------------------------------------
# helpers


async def submit_customer(sales: Person, name: str = "杭州明远机械有限公司") -> None:
    """/new with a phone number, the required answers, Submit."""
    await start_new_company(sales, name)
    await sales.send("13812345678")
    await sales.press("B 重要")
    await sales.press("黄苹果")
    await sales.press("拜访")
    await sales.press("现在保存")  # the essentials only: saved at once
    assert "已提交审核" in sales.last_text(), sales.last_text()


async def quick_customer(world: World, owner: Staff, name: str) -> None:
    """A submitted customer and its notice, without walking through /new (for loops)."""
    async with unit_of_work(world.services.sessions) as session:
        customer = await customer_store.create_customer(
            session,
            keyring=world.services.keyring,
            actor=owner,
            values={"kind": "company", "name": name, "phones": ["+8613812345678"]},
        )
        review = await reviews.pending_review_of(session, customer_id=customer.id or 0)
    assert review is not None and review.id is not None
    await announce(world, review.id)


def cards(world: World, chat_id: int) -> list[dict[str, Any]]:
    """Review cards the bot sent to a chat, as they look now."""
    return [m for m in world.telegram.sent_to(chat_id) if m["text"].startswith("🔔")]


def in_group(world: World, person: Person, group_id: int = GROUP_ID) -> Person:
    """The same person, writing in the managers' group chat."""
    member = world.person(person.id, str(person.user["first_name"]))
    member.chat = {"id": group_id, "type": "group", "title": "East managers"}
    return member


async def the_review(world: World, customer_id: int | None = None) -> Review:
    async with unit_of_work(world.services.sessions) as session:
        query = select(Review).order_by(col(Review.id).desc())
        if customer_id is not None:
            query = query.where(Review.customer_id == customer_id)
        review = (await session.exec(query)).first()
    assert review is not None
    return review


async def audit_of(world: World, action: str) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(AuditEntry).where(AuditEntry.action == action))
        return list(rows.all())


async def announce(world: World, review_id: int) -> None:
    """What another flow's Submitted.after does right after a submission."""
    await review_chat.announce(BotContext(world.app), review_id)
    await scheduler.settle(world.app)  # the cards go out in the background


def answer_texts(world: World) -> list[str]:
    return [a.get("text") or "" for a in world.telegram.answers()]


# ---------------------------------------------------------------------------------------------
# the happy paths


async def test_a_manager_approves_a_new_customer(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)

    [card] = cards(world, manager.id)
    text = card["text"]
    assert text.startswith("🔔 审核 · 新客户建档")
    assert "KH-2026-000001 · 杭州明远机械有限公司" in text
    assert "提交人:Li(East)" in text
    assert "• 电话: 138****5678" in text and "13812345678" not in text
    assert "• 客户分类: B 重要客户" in text
    assert "⏳ 等待审核" in text
    assert labels(card) == ["✅ 通过", "❌ 退回", "🔎 查看详情"]

    await manager.press("通过", card)
    assert manager.last_answer() == "✅ 已审核通过"
    [card] = cards(world, manager.id)  # edited in place
    assert "✅ 已由 Chen 审核通过" in card["text"] and buttons(card) == []
    assert "您提交的新客户 KH-2026-000001 · 杭州明远机械有限公司 已由 Chen 审核通过" in (
        sales.last_text()
    )
    [customer] = await customers(world.services.sessions)
    assert customer.status == "approved" and customer.approved_at is not None
    async with unit_of_work(world.services.sessions) as session:
        history = (await session.exec(select(ChangeRecord).order_by(col(ChangeRecord.id)))).all()
    review = await the_review(world)
    assert [(h.action, h.review_id) for h in history] == [("create", None), ("approve", review.id)]
    actions = await audit_actions(world.services.sessions)
    # saved with its essentials ("save now"): marked for the complete-this-record reminder
    assert actions[-4:] == [
        "customer.create",
        "review.submit",
        "customer.saved_essentials",
        "review.approve",
    ]


async def test_english_speaking_manager_gets_an_english_card(world: World) -> None:
    manager = await world.member("manager", "East", "Chen", language="en")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, manager.id)
        assert staff is not None
        staff.language = "en"
        session.add(staff)
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    [card] = cards(world, manager.id)
    assert card["text"].startswith("🔔 Review · new customer")
    assert "• Phones: 138****5678" in card["text"]
    assert labels(card) == ["✅ Approve", "❌ Reject", "🔎 Open"]


async def test_reject_with_a_reason_then_correct_and_resubmit(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    [card] = cards(world, manager.id)

    await manager.press("退回", card)
    assert question(manager).startswith(
        "请说明退回“新客户 KH-2026-000001 · 杭州明远机械有限公司”的原因"
    )
    assert "KH-2026-000001" in question(manager)
    assert "跳过 »" not in labels(manager.last_message())  # a reason is required
    await manager.send("缺少营业执照照片,请补充")
    assert manager.last_text() == "❌ 已退回,提交人会收到您的原因。"
    [card] = cards(world, manager.id)
    assert "❌ 已由 Chen 退回" in card["text"]
    assert "原因:缺少营业执照照片,请补充" in card["text"]
    assert buttons(card) == []

    told = sales.last_message()
    assert "被 Chen 退回" in told["text"] and "原因:缺少营业执照照片,请补充" in told["text"]
    customer = (await customers(world.services.sessions))[0]
    assert buttons(told) == [
        ("✏️ 修改", f"ce:{customer.id}"),
        ("📤 重新提交", f"rv:rs:{customer.id}"),
    ]
    assert customer.status == "rejected"
    first = await the_review(world)
    assert (first.status, first.reason) == ("rejected", "缺少营业执照照片,请补充")

    await sales.press("重新提交", told)
    assert "已重新提交审核" in sales.last_text()
    assert "→ 已重新提交" in world.telegram.sent_to(sales.id)[-2]["text"]  # its buttons spent
    assert (await customers(world.services.sessions))[0].status == "pending"
    again = await the_review(world)
    assert again.id != first.id and again.status == "pending"
    new_card = cards(world, manager.id)[-1]
    assert "⏳ 等待审核" in new_card["text"]
    await sales.press_data(told, f"rv:rs:{customer.id}")  # the same button again
    assert "不是“已退回”状态" in (sales.last_answer() or "")

    await manager.press("通过", new_card)
    assert (await customers(world.services.sessions))[0].status == "approved"
    actions = await audit_actions(world.services.sessions)
    assert [a for a in actions if a.startswith("review.")] == [
        "review.submit",
        "review.reject",
        "review.submit",
        "review.approve",
    ]


async def test_a_rejection_without_a_reason_is_refused(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    [card] = cards(world, manager.id)
    await manager.press("退回", card)
    prompt = manager.last_message()
    token = buttons(prompt)[0][1].split(":")[1]

    await manager.press_data(prompt, f"w:{token}:s:")  # a forged Skip
    assert manager.last_answer() == "此项为必填,不能跳过。"
    await manager.send("   ")
    assert "不能为空" in manager.last_text()
    await manager.send_sticker()
    assert "需要文字回答" in manager.last_text()
    await manager.send("x" * 501)
    assert "太长了,最多 500 个字" in manager.last_text()
    review = await the_review(world)
    assert review.status == "pending"
    assert (await customers(world.services.sessions))[0].status == "pending"

    await manager.press("取消")  # changing one's mind decides nothing
    assert (await the_review(world)).status == "pending"
    await manager.press("通过", card)
    assert (await the_review(world)).status == "approved"


async def test_reject_survives_a_restart_of_the_bot(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await manager.press("退回", cards(world, manager.id)[0])
    await world.app.shutdown()

    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    manager.app, manager.telegram = world.app, telegram
    sales.app, sales.telegram = world.app, telegram
    await manager.send("客户名称与执照不符")
    assert manager.last_text() == "❌ 已退回,提交人会收到您的原因。"
    assert "原因:客户名称与执照不符" in sales.last_text()
    assert (await the_review(world)).reason == "客户名称与执照不符"


# ---------------------------------------------------------------------------------------------
# changes and complaint resolutions


async def _approved_customer(world: World, manager: Person, sales: Person) -> Customer:
    await submit_customer(sales)
    await manager.press("通过", cards(world, manager.id)[-1])
    [customer] = await customers(world.services.sessions)
    assert customer.status == "approved"
    return customer


async def _propose(world: World, sales: Person, customer: Customer, **values: Any) -> Review:
    """A pending change filed through storage (what the edit flow's submit does)."""
    actor = await staff_of(world.services.sessions, sales)
    async with unit_of_work(world.services.sessions) as session:
        row = await session.get(Customer, customer.id)
        assert row is not None
        result = await changes.edit_customer(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer=row,
            version=row.version,
            values=values,
        )
    assert result.review_id is not None
    await announce(world, result.review_id)
    return await the_review(world)


async def test_a_change_is_applied_only_when_approved(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    customer = await _approved_customer(world, manager, sales)
    review = await _propose(world, sales, customer, phones=["+8613900001111"], stage="red")
    assert review.kind == ReviewKind.customer_change

    card = cards(world, manager.id)[-1]
    assert card["text"].startswith("🔔 审核 · 客户资料变更")
    assert "• 电话: 138****5678 → 139****1111" in card["text"]
    assert "• 客户阶段: 🟡 黄苹果:很可能成交 → 🍎 红苹果:即将成交" in card["text"]
    assert "13900001111" not in card["text"]
    [before] = await customers(world.services.sessions)
    assert before.stage == "yellow" and before.version == customer.version

    await manager.press("通过", card)
    [after] = await customers(world.services.sessions)
    assert after.stage == "red"
    assert "的修改已由 Chen 审核通过并生效" in sales.last_text()
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(ChangeRecord.action).where(ChangeRecord.review_id == review.id)
        )
        assert sorted(rows.all()) == ["approve", "propose", "update"]


async def test_a_rejected_change_is_dropped_and_the_submitter_told(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    customer = await _approved_customer(world, manager, sales)
    await _propose(world, sales, customer, customer_class="A")
    await manager.press("退回", cards(world, manager.id)[-1])
    await manager.send("还没有达到战略客户的标准")
    told = sales.last_message()
    assert "的修改被 Chen 退回,原资料保持不变" in told["text"]
    assert "原因:还没有达到战略客户的标准" in told["text"]
    assert buttons(told) == [("✏️ 重新修改", f"ce:{customer.id}")]
    [row] = await customers(world.services.sessions)
    assert row.customer_class == "B" and row.status == "approved"


async def _resolved_complaint(
    world: World, customer: Customer, sales: Person, handler: Person
) -> Review:
    """A complaint awaiting approval of its resolution, entered directly."""
    received_by = await staff_of(world.services.sessions, sales)
    handled_by = await staff_of(world.services.sessions, handler)
    now = utcnow()
    async with unit_of_work(world.services.sessions) as session:
        complaint = Complaint(
            complaint_no="TS-2026-000001",
            customer_id=customer.id or 0,
            received_by=received_by.id or 0,
            received_at=now - timedelta(days=1),
            type="delivery",
            severity="high",
            description="交货晚了两周",
            handler_id=handled_by.id,
            status="resolved",
            resolution="补偿运费并调整排产",
            feedback="已电话告知客户,客户接受",
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
            submitted_by=handled_by.id or 0,
        )
        session.add(review)
    assert review.id is not None
    await announce(world, review.id)
    return review


async def test_a_complaint_resolution_is_approved_and_closes_the_complaint(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    handler = await world.member("salesperson", "East", "Zhao")
    customer = await _approved_customer(world, manager, sales)
    review = await _resolved_complaint(world, customer, sales, handler)

    card = cards(world, manager.id)[-1]
    assert card["text"].startswith("🔔 审核 · 投诉处理结果")
    assert "TS-2026-000001 · 杭州明远机械有限公司" in card["text"]
    for line in ("• 投诉类型: 交付", "• 严重程度: 高", "• 处理结果: 补偿运费并调整排产"):
        assert line in card["text"]
    await manager.press("通过", card)
    async with unit_of_work(world.services.sessions) as session:
        complaint = await session.get(Complaint, review.complaint_id)
    assert complaint is not None and complaint.status == "closed"
    assert complaint.approver_id == (await staff_of(world.services.sessions, manager)).id
    assert complaint.closed_at is not None
    assert "投诉已关闭" in handler.last_text()


# ---------------------------------------------------------------------------------------------
# exactness


async def test_two_managers_deciding_at_once_give_exactly_one_decision(world: World) -> None:
    """Approve against Approve, and Approve against a reason being sent, many times over."""
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    chen_id, zhou_id = (
        (await staff_of(world.services.sessions, chen)).id,
        (await staff_of(world.services.sessions, zhou)).id,
    )
    li = await staff_of(world.services.sessions, sales)
    for n in range(RACES):
        await quick_customer(world, li, f"同时审核测试 {n} 有限公司")
        chen_card, zhou_card = cards(world, chen.id)[-1], cards(world, zhou.id)[-1]
        rejecting = n % 2 == 1
        if rejecting:
            await zhou.press("退回", zhou_card)  # the reason question is open
        answered, zhou_sent = len(world.telegram.answers()), len(world.telegram.sent_to(zhou.id))
        await asyncio.gather(
            chen.press("通过", chen_card),
            zhou.send("重复录入") if rejecting else zhou.press("通过", zhou_card),
        )
        decided = await the_review(world)
        assert decided.decided_by in (chen_id, zhou_id)
        winner, loser = (chen, zhou) if decided.decided_by == chen_id else (zhou, chen)
        winner_name = "Chen" if winner is chen else "Zhou"
        told = answer_texts(world)[answered:]
        if loser is zhou and rejecting:
            told = [m["text"] for m in world.telegram.sent_to(zhou.id)[zhou_sent:]]
        assert any(t.startswith(f"这条记录已由 {winner_name} 于 ") for t in told), told
        assert decided.status == ("rejected" if rejecting and winner is zhou else "approved")
        async with unit_of_work(world.services.sessions) as session:
            rows = await session.exec(
                select(ChangeRecord).where(
                    ChangeRecord.review_id == decided.id,
                    col(ChangeRecord.action).in_(["approve", "reject"]),
                )
            )
            assert len(rows.all()) == 1
        for person in (chen, zhou):  # every copy of the card shows the one decision
            assert buttons(cards(world, person.id)[-1]) == []
    actions = await audit_actions(world.services.sessions)
    assert actions.count("review.approve") + actions.count("review.reject") == RACES


async def test_a_double_tap_decides_once(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    [card] = cards(world, manager.id)
    await asyncio.gather(manager.press("通过", card), manager.press("通过", card))
    assert sorted(answer_texts(world)[-2:])[0].startswith("✅ 已审核通过")
    assert any("已由 Chen 于" in a for a in answer_texts(world)[-2:])
    told = [m for m in world.telegram.sent_to(sales.id) if "已由 Chen 审核通过" in m["text"]]
    assert len(told) == 1


async def test_a_stale_card_tells_who_decided_and_updates_itself(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    zhou_card = dict(cards(world, zhou.id)[0])  # as Zhou's phone still shows it
    await chen.press("退回", cards(world, chen.id)[0])
    await chen.send("资料不全")
    assert "❌ 已由 Chen 退回" in cards(world, zhou.id)[0]["text"]  # edited for Zhou too

    await zhou.press("通过", zhou_card)  # an old copy, still with its buttons
    answer = zhou.last_answer() or ""
    assert answer.startswith("这条记录已由 Chen 于 ") and answer.endswith("退回,无需再审。")
    assert (await the_review(world)).status == "rejected"
    await zhou.press("退回", zhou_card)
    assert "已由 Chen 于" in (zhou.last_answer() or "")
    assert (await customers(world.services.sessions))[0].status == "rejected"


async def test_reason_typed_after_someone_else_decided_is_told_who(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await chen.press("退回", cards(world, chen.id)[0])
    await zhou.press("通过", cards(world, zhou.id)[0])
    await chen.send("资料不全")
    assert chen.last_text().startswith("这条记录已由 Zhou 于 ")
    assert (await the_review(world)).status == "approved"
    await chen.send("还在吗")  # the reason question is over
    assert "发送 /help" in chen.last_text()


async def test_nobody_approves_their_own_submission(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    await submit_customer(chen)
    assert cards(world, chen.id) == []  # not asked to decide their own
    review = await the_review(world)
    await chen.press_data(chen.last_message(), f"rv:a:{review.id}")
    assert chen.last_answer() == "不能审核自己提交的记录,需由其他经理或管理员审核。"
    await chen.press_data(chen.last_message(), f"rv:r:{review.id}")
    assert chen.last_answer() == "不能审核自己提交的记录,需由其他经理或管理员审核。"
    assert (await the_review(world)).status == "pending"
    refused = await audit_of(world, "review.refused")
    assert [e.entity_id for e in refused] == [review.id, review.id]
    await zhou.press("通过", cards(world, zhou.id)[0])
    assert (await the_review(world)).status == "approved"


async def test_an_admins_own_submission_needs_another_admin_or_a_manager(world: World) -> None:
    admin = world.admin()
    await submit_customer(admin)  # no team: only admins decide, and not this one
    review = await the_review(world)
    assert cards(world, admin.id) == []
    await admin.press_data(admin.last_message(), f"rv:a:{review.id}")
    assert "不能审核自己提交的记录" in (admin.last_answer() or "")
    assert (await the_review(world)).status == "pending"
    other = await world.member("admin", None, "Boss Two")
    await announce(world, review.id or 0)  # a reminder reaches the admin who joined since
    await other.press("通过", cards(world, other.id)[0])
    assert (await the_review(world)).status == "approved"


async def test_a_forged_approve_from_a_salesperson_is_refused_and_audited(world: World) -> None:
    await world.member("manager", "East", "Chen")
    west = await world.member("manager", "West", "Wu")
    sales = await world.member("salesperson", "East", "Li")
    colleague = await world.member("salesperson", "East", "Zhao")
    await submit_customer(sales)
    review = await the_review(world)
    await colleague.send("/help")
    await west.send("/help")
    for person, action in [(sales, "a"), (sales, "r")] + [
        (p, a) for p in (colleague, west) for a in ("a", "r", "o")
    ]:
        await person.press_data(person.last_message(), f"rv:{action}:{review.id}")
        answer = person.last_answer() or ""
        expected = "找不到这条审核记录" if action == "o" else "只有本团队的经理或管理员"
        assert expected in answer, (action, answer)
    assert (await the_review(world)).status == "pending"
    denied = await audit_of(world, "access.denied")
    assert len(denied) == 8
    assert {e.entity for e in denied} == {"review"}
    assert {e.entity_id for e in denied} == {review.id}
    for data in ("rv:a:", "rv:a:x", "rv:zz:1", "rv:a:1:2", "rv:a:999999"):
        await west.press_data(west.last_message(), data)
        assert west.last_answer() in (
            "这个按钮已过期,请使用最新的消息。",
            "找不到这条审核记录,或您无权查看。",
        )
    assert (await the_review(world)).status == "pending"


# ---------------------------------------------------------------------------------------------
# who gets the notices


async def test_notices_go_to_the_right_managers_only(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    gone = await world.member("manager", "East", "Gone")
    west = await world.member("manager", "West", "Wu")
    colleague = await world.member("salesperson", "East", "Zhao")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, gone.id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    assert len(cards(world, chen.id)) == 1 and len(cards(world, zhou.id)) == 1
    for person in (gone, west, colleague, sales, world.admin()):
        assert cards(world, person.id) == []

    lonely = await world.member("salesperson", "North", "Sun")  # a team without a manager
    await submit_customer(lonely, "北方客户有限公司")
    assert len(cards(world, world.admin().id)) == 1
    assert len(cards(world, chen.id)) == 1


async def test_a_manager_group_gets_the_card_and_it_is_edited_in_place(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    group_chen, group_zhou, group_sales = (
        in_group(world, chen),
        in_group(world, zhou),
        in_group(world, sales),
    )
    await group_sales.send("/setgroup")
    assert world.telegram.sent_to(GROUP_ID)[-1]["text"] == "只有团队的经理可以把群设为审核群。"
    assert len(await audit_of(world, "access.denied")) == 1
    await group_chen.send("/setgroup")
    assert "本群将接收 East 团队的审核通知" in world.telegram.sent_to(GROUP_ID)[-1]["text"]
    async with unit_of_work(world.services.sessions) as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).one()
    assert team.manager_chat_id == GROUP_ID

    await submit_customer(sales)
    assert cards(world, chen.id) == [] and cards(world, zhou.id) == []
    [card] = cards(world, GROUP_ID)
    await group_sales.press("通过", card)  # a salesperson in the group
    assert "只有本团队的经理或管理员" in (group_sales.last_answer() or "")
    await group_zhou.press("查看详情", card)
    assert group_zhou.last_answer() == "详情已私聊发给您。"
    assert "• 电话: 138****5678" in zhou.last_text()  # the full card, privately
    await group_chen.press("通过", card)
    [card] = cards(world, GROUP_ID)
    assert "✅ 已由 Chen 审核通过" in card["text"] and buttons(card) == []
    await group_zhou.press_data(card, f"rv:a:{(await the_review(world)).id}")
    assert "已由 Chen 于" in (group_zhou.last_answer() or "")

    # Reject from the group: the reason is asked in private, the group card shows it
    await submit_customer(sales, "第二家客户有限公司")
    card = cards(world, GROUP_ID)[-1]
    await group_zhou.press("退回", card)
    assert group_zhou.last_answer() == "我已在私聊中向您询问退回原因。"
    assert question(zhou).startswith("请说明退回")
    await zhou.send("重复客户")
    card = cards(world, GROUP_ID)[-1]
    # the group card shows the decision; the reason (it may name the customer's details) is
    # for the submitter and the managers' private cards
    assert "❌ 已由 Zhou 退回" in card["text"] and "重复客户" not in card["text"]
    assert [m["text"] for m in world.telegram.sent_to(GROUP_ID)].count(card["text"]) == 1

    await group_chen.send("/setgroup off")
    assert "不再接收" in world.telegram.sent_to(GROUP_ID)[-1]["text"]
    await submit_customer(sales, "第三家客户有限公司")
    assert len(cards(world, chen.id)) == 1  # privately again


async def test_an_unreachable_group_falls_back_to_the_managers(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    async with unit_of_work(world.services.sessions) as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).one()
        team.manager_chat_id = GROUP_ID
        session.add(team)
    # the bot was removed from the group: Telegram refuses to send there
    original = world.telegram._answer

    def refuse_group(name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage" and int(params["chat_id"]) == GROUP_ID:
            return 403, b'{"ok":false,"error_code":403,"description":"Forbidden: bot was kicked"}'
        return original(name, params)

    world.telegram._answer = refuse_group  # type: ignore[method-assign]
    await submit_customer(sales)
    [card] = cards(world, chen.id)
    await chen.press("通过", card)
    assert "✅ 已由 Chen 审核通过" in cards(world, chen.id)[0]["text"]


# ---------------------------------------------------------------------------------------------
# /review


async def test_the_review_queue_oldest_first_in_pages(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    west_sales = await world.member("salesperson", "West", "Xu")
    for n in range(7):
        await submit_customer(sales, f"队列客户 {n} 有限公司")
    await submit_customer(west_sales, "西部客户有限公司")

    await chen.send("/review")
    page = chen.last_message()
    assert page["text"].startswith("📥 待审核 7 项,最早的在前(第 1/2 页)")
    assert "1. 新客户 · KH-2026-000001 · 队列客户 0 有限公司 · Li" in page["text"]
    assert "西部客户" not in page["text"]
    assert labels(page)[:2] == [
        "🔎 1. KH-2026-000001 · 队列客户 0 有限公司",
        "🔎 2. KH-2026-000002 · 队列客户 1 有限公司",
    ]
    assert labels(page)[-1] == "›"
    await chen.press("›", page)
    page = chen.last_message()  # edited in place
    assert "(第 2/2 页)" in page["text"] and "6. 新客户 · KH-2026-000006" in page["text"]
    assert labels(page)[-1] == "‹"

    await chen.press("7.", page)
    card = chen.last_message()
    assert card["text"].startswith("🔔 审核 · 新客户建档")
    assert "KH-2026-000007" in card["text"] and "• 电话: 138****5678" in card["text"]
    [customer] = [
        c for c in await customers(world.services.sessions) if c.customer_no == "KH-2026-000007"
    ]
    review_id = (await the_review(world, customer.id)).id
    assert buttons(card) == [
        ("✅ 通过", f"rv:a:{review_id}"),
        ("❌ 退回", f"rv:r:{review_id}"),
        ("📇 客户档案", f"cu:{customer.id}"),
    ]
    await chen.press("通过", card)
    notice, opened = [m for m in cards(world, chen.id) if "KH-2026-000007" in m["text"]]
    assert "✅ 已由 Chen 审核通过" in notice["text"] and buttons(notice) == []
    assert "✅ 已由 Chen 审核通过" in opened["text"]  # the full card, still full
    assert "• 电话: 138****5678" in opened["text"] and labels(opened) == ["📇 客户档案"]
    await chen.send("/review")
    assert chen.last_text().startswith("📥 待审核 6 项")

    admin = world.admin()
    await admin.send("/review")
    assert admin.last_text().startswith("📥 待审核 7 项")  # every team

    await sales.send("/review")
    assert sales.last_text() == "只有经理和管理员可以审核记录。"


async def test_an_empty_queue_says_so(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    await chen.send("/review")
    assert chen.last_text() == "目前没有待审核的记录。👍"
    teamless = await world.member("manager", None, "Nobody")
    await teamless.send("/review")
    assert teamless.last_text() == "您还没有所属团队,请联系管理员。"


async def test_the_submitter_is_told_even_in_english(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_by_telegram_id(session, sales.id)
        assert staff is not None
        staff.language = "en"
        session.add(staff)
    await sales.send("/new")
    await sales.press("Company")
    await sales.send("Mingyuan")
    await sales.press("Skip")  # phones
    await sales.press("B important")
    await sales.press("Yellow apple")
    await sales.press("Visit")
    await sales.press("Save now")
    await chen.press("退回", cards(world, chen.id)[0])
    await chen.send("Wrong region")
    told = sales.last_message()
    assert told["text"].startswith("❌ Your new customer KH-2026-000001 · Mingyuan was rejected")
    assert "Reason: Wrong region" in told["text"]
    assert labels(told) == ["✏️ Correct", "📤 Resubmit"]


def test_every_kind_of_review_has_its_texts() -> None:
    """Keys the review cards build from data exist in both languages."""
    keys = [f"review.{part}.{kind}" for kind in ReviewKind for part in ("title", "kind")]
    keys += [
        f"review.told.{kind}.{outcome}"
        for kind in ("customer_new", "customer_change", "complaint_resolution", "other")
        for outcome in ("approved", "rejected")
    ]
    keys += [f"review.field.{name}" for name in reviews.COMPLAINT_FIELDS]
    keys += [f"review.complaint.type.{value}" for value in ComplaintType]
    keys += [f"review.complaint.severity.{value}" for value in Severity]
    keys += [f"field.{name}" for name in reviews.FULL_FIELDS]
    keys += [f"review.refused.{code}" for code in reviews.AUDITED_REFUSALS]
    keys += [
        f"review.refused.{code}"
        for code in ("reason_required", "reason_too_long", "subject_changed", "not_rejected")
    ]
    keys += [
        f"review.setgroup.{code}" for code in ("not_allowed", "team_required", "not_this_group")
    ]
    keys += [f"choice.{name}.{value}" for name, value in (("consent_method", "written"),)]
    assert [key for key in keys if not has_message(key)] == []


async def test_a_blocked_submitter_does_not_undo_or_hide_the_decision(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    [card] = cards(world, chen.id)
    original = world.telegram._answer

    def blocked(name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage" and int(params["chat_id"]) == sales.id:
            return 403, b'{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked"}'
        return original(name, params)

    world.telegram._answer = blocked  # type: ignore[method-assign]
    await chen.press("通过", card)
    assert chen.last_answer() == "✅ 已审核通过"
    assert "✅ 已由 Chen 审核通过" in cards(world, chen.id)[0]["text"]
    assert (await the_review(world)).status == "approved"
    assert not [m for m in world.telegram.sent_to(chen.id) if "出了问题" in m["text"]]
    assert "出了问题" not in " ".join(answer_texts(world))


async def test_setgroup_needs_a_teams_manager_in_that_group(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    admin = in_group(world, world.admin())
    await admin.send("/setgroup")
    assert world.telegram.sent_to(GROUP_ID)[-1]["text"] == "您还没有所属团队,无法设置经理群。"
    await in_group(world, chen).send("/setgroup")
    await in_group(world, chen, -100_777).send("/setgroup off")  # not the team's group
    assert world.telegram.sent_to(-100_777)[-1]["text"] == "本群不是您团队的审核群。"
    async with unit_of_work(world.services.sessions) as session:
        team = (await session.exec(select(Team).where(Team.name == "East"))).one()
    assert team.manager_chat_id == GROUP_ID
    actions = await audit_actions(world.services.sessions)
    assert "team.manager_chat" in actions
