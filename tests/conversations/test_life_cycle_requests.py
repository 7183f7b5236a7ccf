"""Archiving (合作终止), reactivation and destruction asked in chat and decided through review.

Everything goes through updates, as owners, managers and admins would press and type: the
card's buttons, the reason, the confirmation, the deciders' cards, the requester's notice.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from storage import reminders as reminder_store
from storage.db import unit_of_work
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    ComplaintStatus,
    Reminder,
    ReminderStatus,
    Review,
    ReviewKind,
    ReviewStatus,
    Staff,
)
from tests.auxil.customer_factory import set_columns, staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import labels
from tests.auxil.handover_helpers import deactivate
from tests.auxil.record_helpers import audit_entries, card, customer_row, make_customer
from tests.auxil.world import NOW, World, start_app

EXPIRED_ZH = "这个按钮已过期"


# ---------------------------------------------------------------------------------------------
# helpers


async def speaks(world: World, person: Person, language: str) -> None:
    """The person's language as the bot keeps it (review cards follow the reader's)."""
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == person.id))).one()
        staff.language = language
        session.add(staff)


async def approved(world: World, owner: Person, name: str = "杭州明远机械有限公司") -> int:
    """An official customer of `owner` (its entry's review decided), due yesterday."""
    cid = await make_customer(world, owner, status="approved", name=name)
    await set_columns(world.services.sessions, cid, next_followup_on=date(2026, 11, 21))
    async with unit_of_work(world.services.sessions) as session:
        await session.exec(
            update(Review)
            .where(col(Review.customer_id) == cid)
            .values(status=ReviewStatus.approved, decided_at=NOW)
        )
    return cid


async def open_card(person: Person, cid: int) -> dict[str, Any]:
    await person.press_data(card(person), f"cu:{cid}")
    return person.last_message()


async def ask(person: Person, cid: int, button: str, reason: str) -> None:
    """From the card: the request button, the reason, the confirmation."""
    await person.press(button, await open_card(person, cid))
    await person.send(reason)
    await person.press("✅" if "归档" in button or "Archive" in button else "确认")


def detail(entry: AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.detail or "{}"))


def review_cards(world: World, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(chat_id) if m["text"].startswith("🔔")]


async def reviews_of(world: World, cid: int) -> list[Review]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(Review)
            .where(Review.customer_id == cid, Review.kind != ReviewKind.customer_new)
            .order_by(col(Review.id))
        )
        return list(rows.all())


async def history_actions(world: World, cid: int) -> list[str]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(ChangeRecord.action)
            .where(ChangeRecord.customer_id == cid)
            .order_by(col(ChangeRecord.id))
        )
        return list(rows.all())


async def pending_reminders_about(world: World, cid: int) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(Reminder).where(
                Reminder.subject_type == "customer",
                Reminder.subject_id == cid,
                Reminder.status == ReminderStatus.pending,
            )
        )
        return list(rows.all())


async def plan_reminders(world: World) -> None:
    await reminder_store.plan(
        world.services.sessions,
        keyring=world.services.keyring,
        rules=reminder_store.Rules.from_settings(world.services.settings),
        now=NOW,
    )


async def my_labels(person: Person) -> list[str]:
    await person.send("/my")
    return labels(person.last_message())


async def restart(world: World) -> None:
    """A new Application on the same database; nothing kept in memory."""
    await world.app.shutdown()
    world.telegram = FakeTelegram()
    world.app = await start_app(world.services, world.telegram)


# ---------------------------------------------------------------------------------------------
# the happy paths


async def test_the_owner_asks_a_manager_approves_and_the_customer_is_archived(
    world: World,
) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    # due today, so planned as its own reminder (days missed before the first poll are told of
    # in one catch-up summary per person instead: storage.reminders.catch_up)
    await set_columns(world.services.sessions, cid, next_followup_on=NOW.date())
    await plan_reminders(world)
    assert await pending_reminders_about(world, cid)  # today's follow-up
    assert any("杭州明远机械" in label for label in await my_labels(sales))

    shown = await open_card(sales, cid)
    assert "🗄 申请归档" in labels(shown)
    assert "🗑 申请销毁" not in labels(shown)  # a salesperson never asks for destruction
    await sales.press("申请归档", shown)
    asked = sales.last_text()
    assert "为什么要将 KH-2026-000001 · 杭州明远机械有限公司 归档(合作终止)?" in asked
    assert "最多 500 个字" in asked
    await sales.send("客户已停业,合作终止")
    confirmation = sales.last_message()
    assert "确认申请将 KH-2026-000001 · 杭州明远机械有限公司 归档?" in confirmation["text"]
    assert "原因:客户已停业,合作终止" in confirmation["text"]
    assert "只读" in confirmation["text"] and "/my" in confirmation["text"]
    assert labels(confirmation) == ["✅ 确认,提交归档申请", "« 上一步", "✖ 取消"]
    await sales.press("确认,提交归档申请", confirmation)
    assert "归档申请已提交,等待经理或管理员审核" in sales.last_text()
    assert (await customer_row(world.services.sessions, cid)).status == "approved"  # not yet

    [notice] = review_cards(world, manager.id)
    assert notice["text"].startswith("🔔 审核 · 归档申请")
    assert "申请理由:客户已停业,合作终止" in notice["text"]
    assert "提交人:Li(East)" in notice["text"]
    pending_card = await open_card(sales, cid)
    assert "已申请归档,等待审核" in pending_card["text"]
    assert "🗄 申请归档" not in labels(pending_card)

    await manager.press("通过", notice)
    assert manager.last_answer() == "✅ 已审核通过"
    [notice] = review_cards(world, manager.id)
    assert "✅ 已由 Chen 审核通过" in notice["text"] and buttons(notice) == []
    told = sales.last_text()
    assert "您申请归档的 KH-2026-000001 · 杭州明远机械有限公司 已由 Chen 审核通过" in told
    customer = await customer_row(world.services.sessions, cid)
    assert customer.status == "archived" and customer.archived_at is not None
    assert customer.next_followup_on is None
    assert await history_actions(world, cid) == ["create", "archive_request", "archive"]
    [review] = await reviews_of(world, cid)
    assert (review.kind, review.status, review.request_reason) == (
        "archive",
        "approved",
        "客户已停业,合作终止",
    )

    # gone from /my (the owner's and the manager's) and from the reminders
    assert not any("杭州明远机械" in label for label in await my_labels(sales))
    assert not any("杭州明远机械" in label for label in await my_labels(manager))
    assert await pending_reminders_about(world, cid) == []
    await plan_reminders(world)
    assert await pending_reminders_about(world, cid) == []

    # read-only on its card: no visit, complaint or edit; reactivation offered
    shown = await open_card(sales, cid)
    assert shown["text"].startswith("🗄 杭州明远机械有限公司")
    assert "此档案已归档,只能查看" in shown["text"]
    offered = labels(shown)
    assert "♻️ 申请恢复合作" in offered
    for gone in ("拜访", "投诉", "修改", "申请归档"):
        assert not any(gone in label and "记录" not in label for label in offered[:2]), offered
    data = [d for _label, d in buttons(shown)]
    assert not any(d.startswith(("cv:", "cc:", "ce:")) for d in data), data
    # the manager may also ask for its destruction
    assert "🗑 申请销毁" in labels(await open_card(manager, cid))


async def test_reactivation_brings_it_back_into_my_with_a_follow_up_due(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await ask(sales, cid, "申请归档", "合作终止")
    await manager.press("通过", review_cards(world, manager.id)[-1])
    assert (await customer_row(world.services.sessions, cid)).status == "archived"

    await sales.press("申请恢复合作", await open_card(sales, cid))
    assert "为什么要恢复合作 KH-2026-000001" in sales.last_text()
    await sales.send("客户重新开业,恢复合作")
    assert "今天需要跟进" in sales.last_text()
    await sales.press("确认,提交恢复合作申请")
    assert "恢复合作申请已提交" in sales.last_text()
    notice = review_cards(world, manager.id)[-1]
    assert notice["text"].startswith("🔔 审核 · 恢复合作申请")
    assert "申请理由:客户重新开业,恢复合作" in notice["text"]
    await manager.send("/review")
    assert "恢复合作" in manager.last_text()

    await manager.press("通过", notice)
    assert "您申请恢复合作的 KH-2026-000001 · 杭州明远机械有限公司 已由 Chen 审核通过" in (
        sales.last_text()
    )
    customer = await customer_row(world.services.sessions, cid)
    assert customer.status == "approved" and customer.archived_at is None
    [_archive, reactivation] = await reviews_of(world, cid)
    assert reactivation.decided_at is not None  # decisions are stamped by the real clock
    assert customer.next_followup_on == reactivation.decided_at.date()
    assert any(label.startswith("杭州明远机械有限公司 · ") for label in await my_labels(sales))
    shown = await open_card(sales, cid)
    data = [d for _label, d in buttons(shown)]
    assert f"cv:{cid}" in data and f"ce:{cid}" in data and f"ar:a:{cid}" in data
    assert await history_actions(world, cid) == [
        "create",
        "archive_request",
        "archive",
        "reactivate_request",
        "reactivate",
    ]


async def test_in_english_a_rejection_needs_a_reason_and_tells_the_requester(
    world: World,
) -> None:
    manager = await world.member("manager", "East", "Chen", language="en")
    sales = await world.member("salesperson", "East", "Li", language="en")
    await speaks(world, manager, "en")
    await speaks(world, sales, "en")
    cid = await approved(world, sales, "Hangzhou Mingyuan Machinery")
    shown = await open_card(sales, cid)
    assert "🗄 Archive" in labels(shown)
    await sales.press("Archive", shown)
    assert "Why should KH-2026-000001 · Hangzhou Mingyuan Machinery be archived" in (
        sales.last_text()
    )
    await sales.send("The customer closed its business.")
    confirmation = sales.last_text()
    assert "Archive KH-2026-000001 · Hangzhou Mingyuan Machinery?" in confirmation
    assert "read-only" in confirmation
    await sales.press("Yes, ask for archiving")
    assert "Your archiving request for KH-2026-000001" in sales.last_text()
    [notice] = review_cards(world, manager.id)
    assert notice["text"].startswith("🔔 Review · archiving request")
    assert "Reason given: The customer closed its business." in notice["text"]

    await manager.press("Reject", notice)
    assert "reason" in manager.last_text().lower()
    await manager.send("They still owe us an invoice; keep it open.")
    told = sales.last_text()
    assert "Your request to archive KH-2026-000001 · Hangzhou Mingyuan Machinery was rejected" in (
        told
    )
    assert "stays an official record" in told
    assert "Reason: They still owe us an invoice; keep it open." in told
    assert (await customer_row(world.services.sessions, cid)).status == "approved"
    assert await history_actions(world, cid) == ["create", "archive_request", "reject"]
    assert "🗄 Archive" in labels(await open_card(sales, cid))  # may ask again


async def test_a_manager_asks_for_destruction_and_an_admin_is_asked(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    admin = world.admin()
    await admin.send("/start")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await set_columns(world.services.sessions, cid, status="archived")

    shown = await open_card(manager, cid)
    await manager.press("申请销毁", shown)
    assert "为什么要销毁 KH-2026-000001" in manager.last_text()
    await manager.send("合作已终止五年,按制度销毁")
    confirmation = manager.last_text()
    assert "⚠️ 此操作无法撤销" in confirmation and "即使从备份恢复也无法找回" in confirmation
    await manager.press("确认,提交销毁申请")
    assert "在另一位经理或管理员审核通过之前不会删除任何内容" in manager.last_text()
    assert review_cards(world, manager.id) == []  # never asked to decide one's own
    [notice] = review_cards(world, admin.id)
    assert notice["text"].startswith("🔔 审核 · 销毁申请")

    # the requester forging the approval of their own request is refused and audited
    [review] = await reviews_of(world, cid)
    await manager.press_data(card(manager), f"rv:a:{review.id}")
    assert "不能审核自己提交的" in (manager.last_answer() or "")
    assert (await reviews_of(world, cid))[0].status == ReviewStatus.pending
    refused = await audit_entries(world.services.sessions, "review.refused")
    assert [detail(e)["reason"] for e in refused] == ["own_submission"]


async def test_a_pipl_erasure_request_goes_from_any_live_status(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    await world.admin().send("/start")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await manager.press_data(card(manager), f"ar:d:{cid}")  # not archived: no plain destruction
    assert "只有已归档的客户可以销毁" in (manager.last_answer() or "")
    await manager.press_data(card(manager), f"ar:p:{cid}")
    assert "依据《个人信息保护法》要求删除其个人信息" in manager.last_text()
    await manager.send("客户于 11 月 20 日来电要求删除")
    assert "无论该客户处于何种状态" in manager.last_text()
    await manager.press("确认,提交删除申请")
    assert "个人信息删除申请已提交" in manager.last_text()
    [review] = await reviews_of(world, cid)
    assert (review.kind, review.status) == ("destroy", "pending")
    [filed] = [
        e
        for e in await audit_entries(world.services.sessions, "review.submit")
        if e.entity_id == review.id
    ]
    assert detail(filed)["pipl"] is True
    await sales.press_data(card(sales), f"ar:p:{cid}")  # a salesperson may not
    assert "只有客户所在团队的经理或管理员可以申请销毁" in (sales.last_answer() or "")


# ---------------------------------------------------------------------------------------------
# forged, stale and double presses


async def test_another_teams_manager_forging_requests_and_decisions_is_refused(
    world: World,
) -> None:
    manager = await world.member("manager", "East", "Chen")
    west = await world.member("manager", "West", "Qian")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    for action in ("a", "r", "d", "p"):
        await west.press_data(card(west), f"ar:{action}:{cid}")
        assert west.last_answer() == "找不到该记录,或您无权查看。", action
    denied = await audit_entries(world.services.sessions, "access.denied")
    assert [(e.entity_id, detail(e)["purpose"]) for e in denied] == [
        (cid, "archive_request"),
        (cid, "reactivate_request"),
        (cid, "destroy_request"),
        (cid, "pipl_destroy_request"),
    ]
    assert await reviews_of(world, cid) == []

    await ask(sales, cid, "申请归档", "合作终止")
    [review] = await reviews_of(world, cid)
    await west.press_data(card(west), f"rv:a:{review.id}")
    assert "只有本团队的经理或管理员" in (west.last_answer() or "")
    await west.press_data(card(west), f"rv:r:{review.id}")
    assert "只有本团队的经理或管理员" in (west.last_answer() or "")
    assert (await reviews_of(world, cid))[0].status == ReviewStatus.pending
    denied = await audit_entries(world.services.sessions, "access.denied")
    assert [detail(e).get("purpose") for e in denied[-2:]] == ["approve", "reject"]
    assert review_cards(world, west.id) == []
    assert manager.id != west.id


async def test_a_salesperson_forging_destruction_is_refused_and_audited(world: World) -> None:
    await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await set_columns(world.services.sessions, cid, status="archived")
    shown = await open_card(sales, cid)
    assert not any(d.startswith("ar:d:") for _label, d in buttons(shown))
    await sales.press_data(shown, f"ar:d:{cid}")
    assert sales.last_answer() == "只有客户所在团队的经理或管理员可以申请销毁。"
    [entry] = [
        e
        for e in await audit_entries(world.services.sessions, "access.denied")
        if detail(e).get("purpose") == "destroy_request"
    ]
    assert (entry.entity_id, detail(entry)["reason"]) == (cid, "not_allowed")
    assert await reviews_of(world, cid) == []
    # nor may a colleague of the team ask to archive someone else's customer
    colleague = await world.member("salesperson", "East", "Wu")
    await colleague.press_data(card(colleague), f"ar:r:{cid}")
    assert colleague.last_answer() == "找不到该记录,或您无权查看。"


async def test_two_managers_approving_at_once_take_one_decision(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await ask(sales, cid, "申请归档", "合作终止")
    [chen_card] = review_cards(world, chen.id)
    [zhou_card] = review_cards(world, zhou.id)
    await asyncio.gather(chen.press("通过", chen_card), zhou.press("通过", zhou_card))
    [review] = await reviews_of(world, cid)
    assert review.status == ReviewStatus.approved
    assert await history_actions(world, cid) == ["create", "archive_request", "archive"]
    approvals = await audit_entries(world.services.sessions, "review.approve")
    assert len(approvals) == 1
    answers = [a.get("text") or "" for a in world.telegram.answers()[-2:]]
    assert "✅ 已审核通过" in answers
    assert any("已由" in a and "审核通过" in a for a in answers if a != "✅ 已审核通过"), answers
    told = [m for m in world.telegram.sent_to(sales.id) if "您申请归档的" in m["text"]]
    assert len(told) == 1


async def test_stale_and_double_presses_file_one_request(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    old_card = await open_card(sales, cid)
    await sales.press("申请归档", old_card)
    question = sales.last_message()
    cancel_data = buttons(question)[-1][1]
    await sales.send("合作终止")
    confirmation = sales.last_message()
    confirm_data = buttons(confirmation)[0][1]
    await sales.press_data(confirmation, confirm_data)
    await sales.press_data(confirmation, confirm_data)  # a double tap
    assert EXPIRED_ZH in (sales.last_answer() or "")
    await sales.press_data(question, cancel_data)  # the reason's question is long gone
    assert EXPIRED_ZH in (sales.last_answer() or "")
    assert len(await reviews_of(world, cid)) == 1
    assert len(review_cards(world, manager.id)) == 1

    await sales.press("申请归档", old_card)  # the card from before the request
    assert sales.last_answer() == "该客户已有待审核的申请,请等待审核结果后再提出。"
    await manager.press("通过", review_cards(world, manager.id)[0])
    await sales.press("申请归档", old_card)  # and after it was archived
    assert "只有正式档案可以归档;该客户当前状态:已归档(只读)" in (sales.last_answer() or "")
    await sales.press_data(old_card, f"ar:x:{cid}")
    assert EXPIRED_ZH in (sales.last_answer() or "")


async def test_the_confirmation_refuses_what_changed_after_the_reason(world: World) -> None:
    """The button was checked, then someone else filed first: the confirmation re-checks."""
    manager = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await sales.press("申请归档", await open_card(sales, cid))
    await sales.send("合作终止")
    await ask(zhou, cid, "申请归档", "经理也认为应归档")
    await sales.press("确认,提交归档申请")
    assert "该客户已有待审核的申请" in sales.last_text()
    reviews = await reviews_of(world, cid)
    assert [r.submitted_by for r in reviews] == [(await staff_of(world.services.sessions, zhou)).id]
    refused = await audit_entries(world.services.sessions, "life_cycle.refused")
    assert [detail(e)["reason"] for e in refused] == ["under_review"]
    assert manager.id


async def test_cancel_and_back_in_the_reason_step(world: World) -> None:
    await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await sales.press("申请归档", await open_card(sales, cid))
    assert "跳过 »" not in labels(sales.last_message())  # a reason is required
    assert not any("上一步" in label for label in labels(sales.last_message()))  # first question
    await sales.press("取消")
    assert sales.last_text() == "已取消,未保存任何内容。"
    assert await reviews_of(world, cid) == []

    await sales.press("申请归档", await open_card(sales, cid))
    await sales.send("")  # nothing typed is no reason
    await sales.send("x" * 501)
    assert "过长" in sales.last_text() or "500" in sales.last_text()
    await sales.send("先写一个原因")
    await sales.press("上一步")  # from the confirmation back to the reason
    assert "为什么要将" in sales.last_text()
    await sales.send("客户被收购,合作终止")
    assert "原因:客户被收购,合作终止" in sales.last_text()
    await sales.press("确认,提交归档申请")
    [review] = await reviews_of(world, cid)
    assert review.request_reason == "客户被收购,合作终止"


async def test_a_restart_between_the_reason_and_the_confirmation(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await sales.press("申请归档", await open_card(sales, cid))
    await sales.send("合作终止")
    confirmation = sales.last_message()
    await restart(world)
    sales = world.person(sales.id, "Li")
    manager = world.person(manager.id, "Chen")
    await sales.press("确认,提交归档申请", confirmation)
    assert "归档申请已提交" in sales.last_text()
    [review] = await reviews_of(world, cid)
    assert review.request_reason == "合作终止"
    assert review_cards(world, manager.id)[0]["text"].startswith("🔔 审核 · 归档申请")


async def test_a_deactivated_requester(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    leaver = await world.member("salesperson", "East", "Wu")
    cid = await approved(world, sales)
    other = await approved(world, leaver, "华泰电子有限公司")

    # deactivated while typing the reason: nothing more is taken
    await sales.press("申请归档", await open_card(sales, cid))
    await deactivate(world.services.sessions, (await staff_of(world.services.sessions, sales)).id)
    await sales.send("合作终止")
    assert "停用" in sales.last_text()
    assert await reviews_of(world, cid) == []

    # deactivated after asking: the request is still decided, and nobody inactive is told
    await ask(leaver, other, "申请归档", "合作终止")
    await deactivate(world.services.sessions, (await staff_of(world.services.sessions, leaver)).id)
    sent_before = len(world.telegram.sent_to(leaver.id))
    await manager.press("通过", review_cards(world, manager.id)[-1])
    assert (await customer_row(world.services.sessions, other)).status == "archived"
    assert len(world.telegram.sent_to(leaver.id)) == sent_before


async def test_open_complaints_keep_a_customer_from_being_archived(world: World) -> None:
    await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_of(world.services.sessions, sales)
        session.add(
            Complaint(
                complaint_no="TS-2026-000001",
                customer_id=cid,
                received_by=staff.id or 0,
                received_at=NOW,
                type="quality",
                severity="normal",
                description="质量问题",
                status=ComplaintStatus.in_progress,
                due_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    await sales.press("申请归档", await open_card(sales, cid))
    assert sales.last_answer() == "该客户仍有未关闭的投诉,请先处理完毕再申请归档。"
    assert await reviews_of(world, cid) == []


# ---------------------------------------------------------------------------------------------
# sizes


async def test_a_500_character_reason_and_a_long_name_fit_everywhere(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    name = "杭州" + "明远精密机械制造" * 12 + "有限公司"
    cid = await approved(world, sales, name[:100])
    reason = "因" * 500
    await sales.press("申请归档", await open_card(sales, cid))
    await sales.send(reason)
    assert reason in sales.last_text()
    await sales.press("确认,提交归档申请")
    [review] = await reviews_of(world, cid)
    assert review.request_reason == reason
    [notice] = review_cards(world, manager.id)
    assert reason in notice["text"]
    await manager.press("退回", notice)
    await manager.send("驳" * 500)
    told = sales.last_text()
    assert "驳" * 500 in told and len(told) <= 4096
    assert world.telegram.refused == []


async def test_a_complaint_logged_while_the_request_waits_holds_the_approval(
    world: World,
) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await ask(sales, cid, "申请归档", "合作终止")
    notice = review_cards(world, manager.id)[-1]
    await sales.press("登记投诉", await open_card(sales, cid))  # still an official record
    assert "投诉" in sales.last_text()
    await sales.send("/cancel")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_of(world.services.sessions, sales)
        session.add(
            Complaint(
                complaint_no="TS-2026-000009",
                customer_id=cid,
                received_by=staff.id or 0,
                received_at=NOW,
                type="quality",
                severity="high",
                description="阀门漏水",
                status=ComplaintStatus.open,
                due_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    await manager.press("通过", notice)
    assert "需先关闭投诉才能归档" in (manager.last_answer() or "")
    assert (await customer_row(world.services.sessions, cid)).status == "approved"
    [review] = await reviews_of(world, cid)
    assert review.status == ReviewStatus.pending
