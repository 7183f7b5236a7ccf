"""Complaints in chat: logging one, its handler moving it on, and everyone who may not."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from bot.context import Services
from storage.db import unit_of_work
from storage.models import ChangeRecord, Complaint, Review
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.field_helpers import (
    CUSTOMER,
    all_rows,
    customer_of,
    denied,
    field_world,
    restart,
)
from tests.auxil.flow_helpers import audit_actions, draft_of, labels, question
from tests.auxil.world import NOW, World

EXPIRED = "这个按钮已过期,请使用最新的消息。"
NOT_FOUND = "找不到该记录,或您无权查看。"


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def log_complaint(
    person: Person, severity: str = "紧急", text: str = "3 台设备交货晚了两周"
) -> None:
    """/complaint for 明远 by phone, about delivery; stops at the summary (or the handler)."""
    await person.send("/complaint")
    await person.press("明远")
    await person.press("电话")
    await person.press("交付")
    await person.press(severity)
    await person.send(text)


def card_of(person: Person, world: World, marker: str) -> dict:
    """The newest message to `person` whose text contains `marker`."""
    found = [m for m in world.telegram.sent_to(person.id) if marker in str(m.get("text"))]
    assert found, f"no message with {marker!r}"
    return copy.deepcopy(found[-1])


async def test_salesperson_logs_a_complaint_and_is_its_handler(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, li)
    await li.send("/complaint")
    assert question(li) == "哪位客户投诉?"
    await li.press("明远")
    assert question(li) == "投诉是通过什么渠道收到的?"
    await li.press("电话")
    await li.press("交付")
    assert question(li) == ("严重程度?处理期限:紧急 1 天,高 3 天,中 7 天,低 14 天。")
    assert labels(li.last_message())[:4] == ["🟢 低", "🟡 中", "🟠 高", "🔴 紧急"]
    await li.press("紧急")
    await li.send("3 台设备交货晚了两周")
    card = li.last_text()  # a salesperson is not asked for a handler: it is the owner
    assert card.startswith("📋 投诉登记:请核对")
    for line in (
        f"• 客户: {CUSTOMER} · {customer.customer_no}",
        "• 投诉渠道: 📞 电话",
        "• 投诉类型: 交付",
        "• 严重程度: 🔴 紧急",
        "• 投诉内容: 3 台设备交货晚了两周",
    ):
        assert line in card, card
    assert "处理人" not in card
    await li.press("提交")
    assert li.last_text() == (
        "✅ 投诉已登记,编号 TS-2026-000001。\n"
        "严重程度:🔴 紧急,处理期限:2026-11-23 10:00。\n"
        "处理人:Li。"
    )
    assert labels(li.last_message()) == ["▶️ 开始处理", "✅ 填写处理结果"]
    [complaint] = await all_rows(world, Complaint)
    me = await staff_of(world.services.sessions, li)
    assert complaint.complaint_no == "TS-2026-000001"
    assert (complaint.customer_id, complaint.received_by, complaint.handler_id) == (
        customer.id,
        me.id,
        me.id,
    )
    assert (complaint.channel, complaint.type, complaint.severity) == (
        "phone",
        "delivery",
        "critical",
    )
    assert complaint.status == "open"
    assert complaint.received_at == NOW
    assert complaint.due_at == NOW + timedelta(hours=24)
    assert (await audit_actions(world.services.sessions))[-1] == "complaint.create"
    assert await draft_of(world.services.sessions, li.id) is None


@pytest.mark.parametrize(
    ("label", "hours", "shown"),
    [
        ("低", 336, "2026-12-06 10:00"),
        ("中", 168, "2026-11-29 10:00"),
        ("高", 72, "2026-11-25 10:00"),
    ],
)
async def test_due_time_follows_severity(world: World, label: str, hours: int, shown: str) -> None:
    li = await world.member()
    await customer_of(world, li)
    await log_complaint(li, severity=label)
    await li.press("提交")
    assert f"处理期限:{shown}" in li.last_text()
    [complaint] = await all_rows(world, Complaint)
    assert complaint.due_at == NOW + timedelta(hours=hours)


async def test_description_is_required_and_checked(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/complaint")
    await li.press("明远")
    await li.press("跳过")  # the channel is optional
    await li.press("服务")
    await li.press("中")
    prompt = li.last_message()
    assert "跳过 »" not in labels(prompt)
    token = buttons(prompt)[0][1].split(":")[1]
    await li.press_data(prompt, f"w:{token}:s:")  # a hand-made Skip
    assert li.last_answer() == "此项为必填,不能跳过。"
    await li.send("   ")
    assert "不能为空" in li.last_text()
    await li.send("长" * 2001)
    assert "太长了,最多 2000 个字" in li.last_text()
    await li.send_photo()
    assert "这里需要文字回答" in li.last_text()
    await li.send("售后响应太慢")
    assert "• 投诉渠道: —" in li.last_text()
    await li.press("提交")
    [complaint] = await all_rows(world, Complaint)
    assert (complaint.channel, complaint.description) == (None, "售后响应太慢")


async def test_a_manager_assigns_a_handler_who_is_told_and_resolves_it(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    boss = await world.member("manager", "East", "Boss")
    await world.member("salesperson", "West", "Wu")
    await customer_of(world, li)
    await log_complaint(boss)
    assert question(boss) == "由谁处理?默认是客户的负责人。"
    assert labels(boss.last_message())[:3] == ["Li(客户负责人)", "Boss", "Zhao"]
    await boss.press("Zhao")
    assert "• 处理人: Zhao" in boss.last_text()
    await boss.press("提交")
    assert "处理人:Zhao。" in boss.last_text()
    assert labels(boss.last_message()) == ["▶️ 开始处理", "✅ 填写处理结果", "👤 更换处理人"]

    notice = zhao.last_message()
    assert notice["text"].startswith("📣 Boss 把一件投诉交给您处理:\n\n📣 投诉 TS-2026-000001")
    assert f"客户:{CUSTOMER}" in notice["text"]
    assert "状态:待处理" in notice["text"]
    assert labels(notice) == ["▶️ 开始处理", "✅ 填写处理结果"]
    await zhao.press("开始处理")
    assert zhao.last_text().startswith("▶️ 已开始处理。")
    assert "状态:处理中" in zhao.last_text()
    assert labels(zhao.last_message()) == ["✅ 填写处理结果"]
    await zhao.press("填写处理结果")
    assert question(zhao) == "投诉 TS-2026-000001 是怎么处理的?"
    await zhao.send("免费更换损坏部件")
    assert question(zhao) == "向客户反馈了什么?客户怎么说?"
    await zhao.send("已电话告知,客户满意")
    await zhao.send("9:30")
    card = zhao.last_text()
    assert "• 处理结果: 免费更换损坏部件" in card
    assert "• 反馈时间: 2026-11-22 09:30" in card
    await zhao.press("提交")
    assert "✅ 投诉 TS-2026-000001 的处理结果已提交,经理审批后结案。" in str(
        [m["text"] for m in world.telegram.sent_to(zhao.id)]
    )

    [complaint] = await all_rows(world, Complaint)
    handler = await staff_of(world.services.sessions, zhao)
    assert (complaint.status, complaint.handler_id) == ("resolved", handler.id)
    assert complaint.resolution == "免费更换损坏部件"
    assert complaint.feedback == "已电话告知,客户满意"
    assert complaint.feedback_at == datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    resolution = (await all_rows(world, Review))[-1]
    assert (resolution.kind, resolution.status) == ("complaint_resolution", "pending")
    assert (resolution.complaint_id, resolution.submitted_by) == (complaint.id, handler.id)
    async with unit_of_work(world.services.sessions) as session:
        history = (
            await session.exec(
                select(ChangeRecord.action)
                .where(ChangeRecord.entity == "complaint")
                .order_by(col(ChangeRecord.id))
            )
        ).all()
    assert history == ["create", "in_progress", "resolve"]
    actions = await audit_actions(world.services.sessions)
    for action in ("complaint.create", "complaint.in_progress", "complaint.resolve"):
        assert action in actions
    # while it awaits approval nobody can move it on, and the card says why
    await boss.press_data(boss.last_message(), f"cx:{complaint.id}:v")
    assert "状态:已处理,待审批" in boss.last_text()
    assert labels(boss.last_message()) == []


async def test_the_wrong_person_is_refused_and_audited(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    west_boss = await world.member("manager", "West", "Chen")
    await customer_of(world, li)
    await log_complaint(li)
    await li.press("提交")
    [complaint] = await all_rows(world, Complaint)
    for outsider in (zhao, west_boss):
        await outsider.send("/help")
        for action in ("take", "resolve", "v", "assign", "to1"):
            await outsider.press_data(outsider.last_message(), f"cx:{complaint.id}:{action}")
            assert outsider.last_answer() == NOT_FOUND
        assert "3 台设备" not in str(world.telegram.sent_to(outsider.id))
    # the handler may not hand it over: that is for managers
    await li.press_data(li.last_message(), f"cx:{complaint.id}:assign")
    assert li.last_answer() == "您没有权限执行此操作。"
    entries = await denied(world)
    assert len(entries) == 11
    assert {e.entity for e in entries} == {"complaint"}
    assert {e.entity_id for e in entries} == {complaint.id}
    assert entries[-1].actor_telegram_id == li.id
    [stored] = await all_rows(world, Complaint)
    assert (stored.status, stored.handler_id) == ("open", complaint.handler_id)
    assert await all_rows(world, Review) == [
        r for r in await all_rows(world, Review) if r.kind == "customer_new"
    ]


async def test_forged_complaint_buttons_for_another_teams_customer(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    wu = await world.member("salesperson", "West", "Wu")
    theirs = await customer_of(world, wu, "西湖茶业")
    await li.send("/help")
    await li.press_data(li.last_message(), f"cc:{theirs.id}")
    assert li.last_text() == NOT_FOUND
    await li.press_data(li.last_message(), f"ccl:{theirs.id}")
    assert li.last_answer() == NOT_FOUND
    await li.press_data(li.last_message(), "cx:99:v")  # no such complaint
    assert li.last_answer() == NOT_FOUND
    for garbage in ("cx:1", "cx:x:v", "cc:1:2", "cx:1:explode", "ccl:1:q2"):
        await li.press_data(li.last_message(), garbage)
        assert li.last_answer() == EXPIRED
    entries = await denied(world)
    assert [(e.entity, e.entity_id) for e in entries] == [
        ("customer", theirs.id),
        ("customer", theirs.id),
        ("complaint", 99),
    ]
    assert await all_rows(world, Complaint) == []
    assert "西湖茶业" not in str(world.telegram.sent_to(li.id))


async def test_stale_complaint_buttons_say_what_happened(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    boss = await world.member("manager", "East", "Boss")
    await customer_of(world, li)
    await log_complaint(li)
    await li.press("提交")
    saved = copy.deepcopy(li.last_message())
    await li.press("开始处理", saved)
    await li.press("开始处理", saved)  # a second tap on the old message
    assert li.last_answer() == "这件投诉现在是“处理中”,这个操作已不适用。"
    [complaint] = await all_rows(world, Complaint)
    # the manager resolves it meanwhile; the handler's resolve button is now stale
    await boss.send("/help")
    await boss.press_data(boss.last_message(), f"cx:{complaint.id}:resolve")
    await boss.send("已退款")
    await boss.send("客户接受")
    await boss.press("跳过")
    await boss.press("提交")
    await li.press("填写处理结果", saved)
    assert li.last_answer() == "这件投诉现在是“已处理,待审批”,这个操作已不适用。"
    assert await draft_of(world.services.sessions, li.id) is None
    [stored] = await all_rows(world, Complaint)
    assert (stored.status, stored.resolution) == ("resolved", "已退款")
    assert stored.feedback_at == NOW  # skipped: now


async def test_two_handlers_resolving_at_once_make_one_resolution(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    boss = await world.member("manager", "East", "Boss")
    await customer_of(world, li)
    await log_complaint(li)
    await li.press("提交")
    [complaint] = await all_rows(world, Complaint)
    for person in (li, boss):
        await person.send("/help")
        await person.press_data(person.last_message(), f"cx:{complaint.id}:resolve")
        await person.send(f"{person.user['first_name']} 的处理")
        await person.send("已反馈")
        await person.press("跳过")
    summary = copy.deepcopy(boss.last_message())
    await li.press("提交")
    await boss.press("提交", summary)  # the resolution card for approval came meanwhile
    assert boss.last_text() == "这件投诉现在是“已处理,待审批”,这个操作已不适用。"
    [stored] = await all_rows(world, Complaint)
    assert stored.resolution == "Li 的处理"
    pending = [r for r in await all_rows(world, Review) if r.kind == "complaint_resolution"]
    assert len(pending) == 1


async def test_a_manager_changes_the_handler_from_the_list(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    boss = await world.member("manager", "East", "Boss")
    customer = await customer_of(world, li)
    for severity in ("低", "高"):
        await log_complaint(li, severity=severity)
        await li.press("提交")
    await boss.send("/help")
    await boss.press_data(boss.last_message(), f"ccl:{customer.id}")
    listing = boss.last_text()
    assert listing.startswith(f"🗂 {CUSTOMER}({customer.customer_no})的投诉")
    assert "• TS-2026-000002 · 待处理 · 🟠 高 · 期限 2026-11-25 10:00" in listing
    assert labels(boss.last_message()) == ["TS-2026-000002", "TS-2026-000001", "➕ 登记投诉"]
    await boss.press("TS-2026-000002")
    assert boss.last_text().startswith("📣 投诉 TS-2026-000002")
    await boss.press("更换处理人")
    assert boss.last_text() == "改由谁处理?"
    assert labels(boss.last_message()) == ["✓ Li", "Boss", "Zhao"]
    await boss.press("Zhao")
    assert boss.last_text().startswith("👤 已改由 Zhao 处理。")
    assert zhao.last_text().startswith("📣 Boss 把一件投诉交给您处理:")
    second = (await all_rows(world, Complaint))[1]
    assert second.handler_id == (await staff_of(world.services.sessions, zhao)).id
    assert "complaint.assign" in await audit_actions(world.services.sessions)


async def test_a_handler_who_never_opened_the_bot_is_reported(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    boss = await world.member("manager", "East", "Boss")
    await customer_of(world, li)
    world.telegram.blocked.add(zhao.id)  # type: ignore[attr-defined]
    await log_complaint(boss)
    await boss.press("Zhao")
    await boss.press("提交")
    assert boss.last_text().startswith("⚠️ 无法通知处理人 Zhao")
    [complaint] = await all_rows(world, Complaint)
    assert complaint.complaint_no == "TS-2026-000001"  # saved all the same


async def test_restart_in_the_middle_of_a_complaint(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/complaint")
    await li.press("明远")
    await li.press("网上")
    await restart(world)
    again = Person(world.app, world.telegram, li.id, "Li")
    await again.send("/start")
    assert question(again) == "投诉的是什么?"
    await again.press("账单")
    await again.press("低")
    await again.send("发票金额开错")
    await again.press("提交")
    [complaint] = await all_rows(world, Complaint)
    assert (complaint.channel, complaint.type, complaint.severity) == ("online", "billing", "low")


async def test_a_complaint_from_the_customer_card_in_english(world: World) -> None:
    sam = await world.member("salesperson", "East", "Sam", language="en")
    customer = await customer_of(world, sam, "Mingyuan Machinery")
    await sam.send("/help")
    await sam.press_data(sam.last_message(), f"cc:{customer.id}")
    assert question(sam) == "How did the complaint reach us?"
    await sam.press("During a visit")
    await sam.press("Product quality")
    await sam.press("Critical")
    await sam.send("The spindle overheats")
    await sam.press("Submit")
    assert sam.last_text() == (
        "✅ Complaint registered as TS-2026-000001.\n"
        "Severity: 🔴 Critical; to be resolved by 2026-11-23 10:00.\n"
        "Handler: Sam."
    )
    await sam.press("Enter the resolution")
    assert question(sam) == "How was complaint TS-2026-000001 resolved?"


async def test_an_approved_resolution_closes_the_complaint(world: World) -> None:
    """The review module decides; `storage.complaints.decide_resolution` closes the complaint."""
    li = await world.member("salesperson", "East", "Li")
    boss = await world.member("manager", "East", "Boss")
    await customer_of(world, li)
    await log_complaint(li)
    await li.press("提交")
    await li.press("填写处理结果")
    await li.send("更换部件")
    await li.send("客户满意")
    await li.press("跳过")
    await li.press("提交")
    review_card = card_of(boss, world, "投诉处理结果")
    await boss.press("通过", review_card)
    [complaint] = await all_rows(world, Complaint)
    assert (complaint.status, complaint.approver_id) == (
        "closed",
        (await staff_of(world.services.sessions, boss)).id,
    )
    assert complaint.closed_at is not None
