"""A salesperson logs a visit step by step: the happy path and every way it goes wrong."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlmodel import col, select

from bot.context import Services
from storage.db import unit_of_work
from storage.models import Attachment, ChangeRecord, Customer, Visit
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.field_helpers import (
    CUSTOMER,
    all_rows,
    customer_of,
    denied,
    field_world,
    reload,
    restart,
    send_document,
    send_voice,
)
from tests.auxil.flow_helpers import audit_actions, draft_of, labels, question
from tests.auxil.world import World


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def up_to_location(person: Person) -> None:
    """/visit, the customer, on site, time skipped: the location question is next."""
    await person.send("/visit")
    await person.press("明远")
    await person.press("上门拜访")
    await person.press("跳过")


async def test_salesperson_logs_a_visit_with_location_photo_document_and_voice(
    world: World,
) -> None:
    li = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, li)
    await li.send("/visit")
    assert question(li) == "拜访的是哪位客户?"
    assert labels(li.last_message())[0] == f"{CUSTOMER} · {customer.customer_no}"
    await li.press("明远")
    await li.press("上门拜访")
    await li.send("11-21 15:30")
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    keyboard = world.telegram.reply_keyboard(li.id)
    assert keyboard is not None
    assert keyboard["keyboard"][0][0] == {"text": "📍 发送当前位置", "request_location": True}
    await li.send_location(30.27415, 120.15515)
    assert question(li) == "拜访目的是什么?"
    await li.send("介绍新款数控机床")
    await li.send("报价和交货期")
    await li.send("希望 30 天内交货")
    await li.send("下周发正式报价")
    assert question(li) == "客户阶段有变化吗?"
    assert labels(li.last_message())[:2] == [
        "➖ 不变(仍是 🟡 黄苹果:很可能成交)",
        "→ 🍎 红苹果:即将成交",
    ]
    await li.press("红苹果")
    assert question(li) == "下次跟进日期?跳过则默认 2026-12-06。"
    await li.send("12月1日")
    assert question(li) == "有照片、文件或语音吗?可以发多个,发完点“完成”。"
    await li.send_photo()
    assert "已收到第 1 个附件" in li.last_text()
    await send_document(li)
    await send_voice(li)
    assert "已收到第 3 个附件" in li.last_text()
    await li.press("完成")
    card = li.last_text()
    assert card.startswith("📋 拜访记录:请核对")
    for line in (
        f"• 客户: {CUSTOMER} · {customer.customer_no}",
        "• 拜访方式: 🏢 上门拜访",
        "• 拜访时间: 2026-11-21 15:30",
        "• 位置: 30.27415, 120.15515",
        "• 拜访目的: 介绍新款数控机床",
        "• 阶段变化: → 🍎 红苹果:即将成交",
        "• 下次跟进日期: 2026-12-01",
        "• 附件: 附件 3 个",
    ):
        assert line in card, card
    await li.press("提交")
    assert li.last_text().startswith(
        f"✅ 拜访已记录:{CUSTOMER} · {customer.customer_no},2026-11-21 15:30。"
    )
    assert "客户阶段已改为 🍎 红苹果:即将成交" in li.last_text()

    [visit] = await all_rows(world, Visit)
    assert visit.kind == "on_site"
    assert visit.visited_at == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    assert (visit.latitude, visit.longitude) == (30.27415, 120.15515)
    assert (visit.purpose, visit.outcome) == ("介绍新款数控机床", "下周发正式报价")
    assert visit.needs_feedback == "希望 30 天内交货"
    assert visit.stage_change == "red"
    assert visit.next_followup_on == date(2026, 12, 1)
    stored = await all_rows(world, Attachment)
    assert [(a.kind, a.file_id, a.visit_id) for a in stored] == [
        ("photo", "photo-2", visit.id),  # the largest size of the photo
        ("document", "doc-quote.pdf", visit.id),
        ("voice", "voice-1", visit.id),
    ]
    fresh = await reload(world, customer)
    assert (fresh.last_visit_on, fresh.next_followup_on) == (date(2026, 11, 21), date(2026, 12, 1))
    assert fresh.stage == "red"
    async with unit_of_work(world.services.sessions) as session:
        history = (await session.exec(select(ChangeRecord).order_by(col(ChangeRecord.id)))).all()
    assert [(h.entity, h.action) for h in history] == [
        ("customer", "create"),
        ("customer", "location"),  # the first on-site visit with a location places the customer
        ("visit", "create"),
        ("customer", "visit"),
    ]
    assert (await audit_actions(world.services.sessions))[-2:] == [
        "visit.create",
        "customer.update",
    ]
    assert await draft_of(world.services.sessions, li.id) is None


async def test_skipped_answers_take_their_defaults(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("电话")
    await li.press("跳过其余")
    card = li.last_text()
    assert "• 拜访时间: 现在(默认)" in card
    assert "• 阶段变化: ➖ 不变(默认)" in card
    assert "• 下次跟进日期: 2026-12-06(默认)" in card  # class B: 14 days
    await li.press("提交")
    [visit] = await all_rows(world, Visit)
    assert visit.visited_at == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # the clock's now
    assert (visit.kind, visit.stage_change, visit.latitude) == ("phone", None, None)
    fresh = await reload(world, customer)
    assert (fresh.last_visit_on, fresh.next_followup_on) == (date(2026, 11, 22), date(2026, 12, 6))
    assert fresh.stage == "yellow"
    assert await all_rows(world, Attachment) == []


async def test_text_where_a_location_is_expected_and_a_location_where_text_is(
    world: World,
) -> None:
    li = await world.member()
    await customer_of(world, li)
    await up_to_location(li)
    await li.send("就在客户楼下")
    assert "请用下方的“发送当前位置”按钮分享位置,或跳过" in li.last_text()
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send_sticker()
    assert "请用下方的“发送当前位置”按钮分享位置" in li.last_text()
    await li.send("跳过 »")  # the reply keyboard's Skip arrives as text
    assert question(li) == "拜访目的是什么?"
    assert world.telegram.reply_keyboard(li.id) == {"remove_keyboard": True}
    await li.send_location(30.1, 120.1)
    assert "这一项不需要位置" in li.last_text()
    assert question(li) == "拜访目的是什么?"
    await li.send_photo()
    assert "这里需要文字回答" in li.last_text()
    await li.send("回访")
    assert question(li) == "谈了些什么?"


async def test_back_and_skip(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await up_to_location(li)
    await li.send("« 上一步")  # Back on the location question, from the reply keyboard
    assert question(li).startswith("拜访时间?")
    await li.send("09:15")
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send_location(30.2, 120.2)
    await li.press("上一步")  # back from the purpose to the location
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send("跳过 »")  # a skip replaces the location given before
    await li.press("跳过")  # purpose
    await li.press("上一步")
    assert question(li) == "拜访目的是什么?"
    await li.send("年度回访")
    await li.press("跳过其余")
    card = li.last_text()
    assert "• 拜访时间: 2026-11-22 09:15" in card
    assert "• 位置: —" in card
    assert "• 拜访目的: 年度回访" in card
    await li.press("✏️ 附件")  # the attachments question from the summary
    await li.send_photo()
    await li.press("完成")
    assert "• 附件: 附件 1 个" in li.last_text()
    await li.press("提交")
    [visit] = await all_rows(world, Visit)
    assert visit.visited_at == datetime(2026, 11, 22, 1, 15, tzinfo=UTC)
    assert visit.latitude is None and visit.purpose == "年度回访"
    assert len(await all_rows(world, Attachment)) == 1


async def test_cancel_in_the_middle_of_the_attachments_saves_nothing(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    for _ in range(6):  # time, location (text), purpose, discussion, needs, outcome
        if question(li).startswith("在客户现场"):
            await li.send("跳过 »")
        else:
            await li.press("跳过")
    await li.press("青苹果")
    await li.press("跳过")  # follow-up
    await li.send_photo()
    await send_document(li)
    assert "已收到第 2 个附件" in li.last_text()
    await li.press("取消")
    assert li.last_text() == "已取消,未保存任何内容。"
    assert await all_rows(world, Visit) == []
    assert await all_rows(world, Attachment) == []
    assert await draft_of(world.services.sessions, li.id) is None
    fresh = await reload(world, customer)
    assert (fresh.stage, fresh.last_visit_on) == ("yellow", None)


async def test_invalid_times_and_dates_are_explained_and_asked_again(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("线上")
    await li.send("25:99")
    assert "这不是有效的日期或时间" in li.last_text()
    assert "例如:15:30、下午3点、昨天15:30 或 11月21日 15:30" in li.last_text()
    assert question(li).startswith("拜访时间?")
    await li.send("23:00")  # later today: not yet happened
    assert "时间不能晚于现在" in li.last_text()
    await li.send("现在")
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send("跳过 »")
    for _ in range(4):
        await li.press("跳过")
    await li.press("不变")
    await li.send("2020-01-01")
    assert "日期不能早于今天" in li.last_text()
    await li.send("2026-13-45")
    assert "这不是有效的日期" in li.last_text()
    await li.send("+10")
    assert question(li).startswith("有照片、文件或语音吗")
    await li.send("这是一张照片")
    assert "这里需要照片、文件或语音" in li.last_text()
    await li.press("完成")
    assert "• 下次跟进日期: 2026-12-02" in li.last_text()
    assert "• 阶段变化: ➖ 不变(仍是 🟡 黄苹果:很可能成交)" in li.last_text()


async def test_a_stale_button_is_refused(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    kinds = copy.deepcopy(li.last_message())  # as the user's app still shows it
    await li.press("上门拜访", kinds)
    await li.press("电话", kinds)  # the same question again, from the old message
    assert li.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert question(li).startswith("拜访时间?")
    await li.press("跳过其余")
    summary = copy.deepcopy(li.last_message())
    await li.press("提交", summary)
    await li.press("提交", summary)  # a double tap saves once
    assert li.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert len(await all_rows(world, Visit)) == 1


async def test_a_forged_visit_button_for_another_teams_customer_is_refused_and_audited(
    world: World,
) -> None:
    li = await world.member("salesperson", "East", "Li")
    west = await world.member("salesperson", "West", "Wu")
    theirs = await customer_of(world, west, "西湖茶业")
    await customer_of(world, li)
    await li.send("/help")
    await li.press_data(li.last_message(), f"cv:{theirs.id}")
    assert li.last_text() == "找不到该记录,或您无权查看。"
    assert "西湖茶业" not in str(world.telegram.sent_to(li.id))
    await li.press_data(li.last_message(), f"cvl:{theirs.id}")
    assert li.last_answer() == "找不到该记录,或您无权查看。"
    await li.press_data(li.last_message(), "cvl:1:a999")  # a visit that does not exist
    assert li.last_answer() == "找不到该记录,或您无权查看。"
    await li.press_data(li.last_message(), "cv:drop table")
    assert li.last_answer() == "这个按钮已过期,请使用最新的消息。"
    entries = await denied(world)
    assert [(e.entity, e.entity_id) for e in entries] == [
        ("customer", theirs.id),
        ("customer", theirs.id),
        ("visit", 999),
    ]
    assert all(e.actor_telegram_id == li.id for e in entries)
    assert await all_rows(world, Visit) == []
    assert await draft_of(world.services.sessions, li.id) is None


async def test_a_salesperson_cannot_log_a_visit_for_a_colleagues_customer(
    world: World,
) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    boss = await world.member("manager", "East", "Boss")
    theirs = await customer_of(world, zhao, "滨江电子")
    await customer_of(world, li)
    await li.send("/visit")
    assert "滨江电子" not in str(labels(li.last_message()))
    await li.send("滨江电子")  # searching does not find it either
    assert "没有找到与“滨江电子”相符的客户" in li.last_text()
    await li.send("/cancel")
    await li.press_data(li.last_message(), f"cv:{theirs.id}")
    assert li.last_text() == "找不到该记录,或您无权查看。"
    [entry] = await denied(world)
    assert (entry.entity_id, entry.actor_telegram_id) == (theirs.id, li.id)
    # the team's manager may
    await boss.send("/help")
    await boss.press_data(boss.last_message(), f"cv:{theirs.id}")
    assert question(boss) == "这次是怎么拜访的?"
    await boss.press("电话")
    await boss.press("跳过其余")
    await boss.press("提交")
    [visit] = await all_rows(world, Visit)
    assert (visit.customer_id, visit.salesperson_id) == (
        theirs.id,
        (await staff_of(world.services.sessions, boss)).id,
    )


async def test_a_customer_handed_over_mid_flow_cannot_be_logged(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    zhao = await world.member("salesperson", "East", "Zhao")
    customer = await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("电话")
    await li.press("跳过其余")
    new_owner = await staff_of(world.services.sessions, zhao)
    async with unit_of_work(world.services.sessions) as session:  # an admin hands it over
        row = await session.get(Customer, customer.id)
        assert row is not None
        row.owner_id = new_owner.id or 0
        session.add(row)
    await li.press("提交")
    assert li.last_text() == "找不到该记录,或您无权查看。"
    assert await all_rows(world, Visit) == []
    [entry] = await denied(world)
    assert "visit.log" in (entry.detail or "")


async def test_restart_in_the_middle_continues_where_it_stopped(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.press("跳过")
    await li.send_location(30.3, 120.3)
    await li.press("跳过其余")
    await li.press("✏️ 附件")
    await li.send_photo()

    await restart(world)  # a new process, nothing in memory
    again = Person(world.app, world.telegram, li.id, "Li")

    await send_voice(again)
    assert "已收到第 2 个附件" in again.last_text()
    await again.press("完成")
    assert "• 位置: 30.30000, 120.30000" in again.last_text()
    await again.press("提交")
    [visit] = await all_rows(world, Visit)
    assert visit.latitude == 30.3
    assert [a.kind for a in await all_rows(world, Attachment)] == ["photo", "voice"]


async def test_a_visit_started_from_the_customer_card(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await li.send("/help")
    await li.press_data(li.last_message(), f"cv:{customer.id}")
    assert question(li) == "这次是怎么拜访的?"
    assert "第 2/11 项" in li.last_text()
    await li.press("上门拜访")
    await li.press("跳过其余")
    card = li.last_text()
    assert f"• 客户: {CUSTOMER} · {customer.customer_no}" in card
    assert "• 下次跟进日期: 2026-12-06(默认)" in card
    await li.press("提交")
    [visit] = await all_rows(world, Visit)
    assert visit.customer_id == customer.id


async def test_starting_a_visit_over_an_unfinished_one_offers_to_continue(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press_data(li.last_message(), f"cv:{customer.id}")
    assert "您还有一份未完成的“拜访记录”" in li.last_text()
    await li.press("放弃")
    assert question(li) == "这次是怎么拜访的?"


async def test_the_visit_list_pages_and_resends_location_and_attachments(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    for day in range(14, 21):  # seven visits, the last one with files
        await li.send("/visit")
        await li.press("明远")
        await li.press("上门拜访")
        await li.send(f"11-{day} 10:00")
        if day == 20:
            await li.send_location(30.27, 120.15)
            for _ in range(4):
                await li.press("跳过")
            await li.press("不变")  # the stage: "No change" is its one skip button
            await li.press("跳过")
            await li.send_photo()
            await send_document(li)
            await send_voice(li)
            await li.press("完成")
        else:
            await li.send("跳过 »")  # location
            await li.press("跳过其余")
        await li.press("提交")
    await li.press("该客户的拜访记录")
    page = li.last_text()
    assert page.startswith(f"🗂 {CUSTOMER}({customer.customer_no})的拜访记录")
    assert "1. 🗓 2026-11-20 10:00 · 🏢 上门拜访 · Li" in page
    assert "5. 🗓 2026-11-16 10:00" in page
    assert "11-15" not in page
    assert "第 1/2 页" in page
    assert "📎 附件 3 个" in page
    listing = li.last_message()
    await li.press("›")
    assert li.last_message()["message_id"] == listing["message_id"]  # the page is edited
    assert "6. 🗓 2026-11-15 10:00" in li.last_text()
    assert "第 2/2 页" in li.last_text()
    await li.press("‹")
    calls_before = len(world.telegram.calls)
    await li.press("第 1 条的附件")
    sent = [(name, p) for name, p in world.telegram.calls[calls_before:] if name.startswith("send")]
    assert [name for name, _ in sent] == ["sendLocation", "sendPhoto", "sendDocument", "sendVoice"]
    assert [p.get("photo") or p.get("document") or p.get("voice") for _, p in sent[1:]] == [
        "photo-2",
        "doc-quote.pdf",
        "voice-1",
    ]
    assert sent[1][1]["caption"] == "拜访 2026-11-20 10:00 · 附件 1/3"


async def test_an_english_speaker_logs_a_visit_in_english(world: World) -> None:
    sam = await world.member("salesperson", "East", "Sam", language="en")
    await customer_of(world, sam, "Mingyuan Machinery")
    await sam.send("/visit")
    assert question(sam) == "Which customer did you visit?"
    await sam.press("Mingyuan")
    await sam.press("On site")
    await sam.send("now")
    assert question(sam) == "At the customer's? Share your location with the button below."
    await sam.send("Skip »")
    await sam.press("Skip the remaining")
    card = sam.last_text()
    assert "• Time of visit: now (default)" in card
    assert "• Stage change: ➖ No change (default)" in card
    await sam.press("Submit")
    assert sam.last_text().startswith("✅ Visit logged: Mingyuan Machinery")
    assert [b for b, _ in buttons(sam.last_message())] == ["📋 Visits of this customer"]
