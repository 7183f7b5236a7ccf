"""/today: the day's plan in one message, each entry a button, nearby customers on a location."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest

from bot.context import Services
from conversations import fit
from storage import checkin, complaints, key_persons
from storage.db import unit_of_work
from storage.models import Customer, Staff
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.field_helpers import customer_of, field_world
from tests.auxil.flow_helpers import labels
from tests.auxil.world import NOW, World
from tests.conversations.test_checkin_visits import HOME, north_of

TODAY = date(2026, 11, 22)  # NOW in Shanghai: a Sunday


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


def plan_message(world: World, person: Person) -> dict[str, Any]:
    """The plan itself (the share-location prompt follows it)."""
    return next(
        m
        for m in reversed(world.telegram.sent_to(person.id))
        if str(m.get("text", "")).startswith("📅")
    )


async def customer(
    world: World, owner: Person, name: str, *, due: date | None = None, **values: Any
) -> Customer:
    made = await add_customer(
        world.services.sessions, world.services.keyring, owner, name, **values
    )
    if due is not None:
        await set_columns(world.services.sessions, made.id or 0, next_followup_on=due)
    return made


async def place(world: World, owner: Person, made: Customer, where: checkin.Place) -> None:
    actor = await staff_of(world.services.sessions, owner)
    async with unit_of_work(world.services.sessions) as session:
        await checkin.set_customer_location(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=made.id or 0,
            location={"latitude": where.latitude, "longitude": where.longitude},
            now=NOW,
        )


async def complaint_for(world: World, who: Person, made: Customer, handler: Person) -> None:
    actor = await staff_of(world.services.sessions, who)
    handler_row = await staff_of(world.services.sessions, handler)
    async with unit_of_work(world.services.sessions) as session:
        await complaints.log_complaint(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer_id=made.id or 0,
            values={
                "complaint_type": "delivery",
                "severity": "high",
                "description": "到货晚了三天",
                "handler_id": handler_row.id,
            },
            now=NOW,
            due_hours=world.services.settings.complaint_due_hours,
        )


async def key_person(world: World, who: Person, made: Customer, name: str, birthday: str) -> None:
    actor = await staff_of(world.services.sessions, who)
    async with unit_of_work(world.services.sessions) as session:
        row = await session.get(Customer, made.id)
        assert row is not None
        await key_persons.add_key_person(
            session,
            keyring=world.services.keyring,
            actor=actor,
            customer=row,
            values={"kp_name": name, "kp_birthday": birthday},
        )


async def test_nothing_to_do_in_chinese_and_english(world: World) -> None:
    li = await world.member()
    await li.send("/today")
    plan = plan_message(world, li)
    assert plan["text"] == (
        "📅 今日计划 2026-11-22(周日)\n\n🎉 今天没有待办:没有到期或逾期的跟进、待处理投诉和生日。"
    )
    assert labels(plan) == ["🔄 刷新"]
    assert li.last_text() == "📍 发送您的位置,查看附近的客户。"
    keyboard = world.telegram.reply_keyboard(li.id)
    assert keyboard is not None
    assert keyboard["keyboard"][0][0] == {
        "text": "📍 发送位置,看附近客户",
        "request_location": True,
    }
    mike = await world.member(name="Mike", language="en")
    await mike.send("/today")
    assert plan_message(world, mike)["text"] == (
        "📅 Today, 2026-11-22 (Sun)\n\n🎉 Nothing to do today: no follow-ups due or overdue,"
        " no open complaints, no birthdays."
    )


async def test_the_plan_lists_each_kind_with_a_button_that_opens_it(world: World) -> None:
    li = await world.member()
    boss = await world.member("manager", name="Wang")
    due = await customer(world, li, "杭州明远机械有限公司", due=TODAY)
    late = await customer(world, li, "宁波海达贸易有限公司", due=TODAY - timedelta(days=4))
    await customer(world, li, "未来客户", due=TODAY + timedelta(days=3))  # not yet
    await complaint_for(world, li, due, li)
    await key_person(world, li, late, "王总", "1970-11-22")
    await key_person(world, li, due, "李经理", "1985-11-25")
    await key_person(world, li, due, "下月生日", "1985-12-25")
    await li.send("/today")
    plan = plan_message(world, li)
    text = plan["text"]
    for line in (
        "⏰ 今天到期的跟进:1",
        f"1. 杭州明远机械有限公司 · {due.customer_no}",
        "⚠️ 逾期的跟进:1",
        f"2. 宁波海达贸易有限公司 · {late.customer_no} · 应于 2026-11-18,逾期 4 天",
        "🛠 您处理的投诉:1",
        "🎂 本周生日:2",
        "4. 王总 (宁波海达贸易有限公司) 今天",
        "5. 李经理 (杭州明远机械有限公司) 11-25 周三",
    ):
        assert line in text, text
    assert "未来客户" not in text and "下月生日" not in text
    assert labels(plan)[:5] == [
        "1. 杭州明远机械有限公司",
        "2. 宁波海达贸易有限公司",
        labels(plan)[2],
        "4. 王总",
        "5. 李经理",
    ]
    assert labels(plan)[2].startswith("3. TS-") or labels(plan)[2].startswith("3. ")
    # each button is its feature's own: the card, the complaint, the key persons
    await li.press("1. 杭州明远", plan)
    assert "杭州明远机械有限公司" in li.last_text() and due.customer_no in li.last_text()
    await li.press(labels(plan)[2], plan)
    assert "到货晚了三天" in li.last_text()
    await li.press("4. 王总", plan)
    assert "王总" in li.last_text()
    # the manager's own plan holds none of it: they own and handle nothing
    await boss.send("/today")
    assert "🎉" in plan_message(world, boss)["text"]


async def test_a_manager_sees_what_they_own_and_handle(world: World) -> None:
    li = await world.member()
    boss = await world.member("manager", name="Wang")
    theirs = await customer(world, boss, "经理自己的客户", due=TODAY)
    lis = await customer(world, li, "业务员的客户", due=TODAY)
    await complaint_for(world, boss, lis, boss)  # the manager assigned it to themselves
    await boss.send("/today")
    text = plan_message(world, boss)["text"]
    assert "经理自己的客户" in text and f"业务员的客户 · {lis.customer_no}" not in text
    assert "🛠 您处理的投诉:1" in text
    assert theirs.customer_no in text
    await li.send("/today")
    text = plan_message(world, li)["text"]
    assert "业务员的客户" in text and "经理自己的客户" not in text
    assert "投诉" not in text


async def test_a_colleague_and_another_team_are_never_in_the_plan(world: World) -> None:
    li = await world.member()
    chen = await world.member(name="Chen")
    west = await world.member(team="West", name="Zhao")
    await customer(world, chen, "陈的客户", due=TODAY)
    await customer(world, west, "西区客户", due=TODAY)
    pooled = await customer(world, li, "公海客户", due=TODAY)
    await set_columns(world.services.sessions, pooled.id or 0, pooled_at=NOW)
    await li.send("/today")
    assert "🎉" in plan_message(world, li)["text"]


async def test_two_hundred_entries_with_the_longest_names_fit_one_message(world: World) -> None:
    li = await world.member()
    longest = "极" * 200  # the name column's limit
    for n in range(100):
        await customer(world, li, f"{longest[:-4]}{n:04d}", due=TODAY)
    for n in range(100):
        await customer(world, li, f"{n:04d}{longest[:-4]}", due=TODAY - timedelta(days=1 + n))
    await li.send("/today")  # the fake Telegram refuses anything over Telegram's limits
    plan = plan_message(world, li)
    text = plan["text"]
    assert fit.units(text) <= fit.MESSAGE_LIMIT
    assert "⏰ 今天到期的跟进:100" in text and "⚠️ 逾期的跟进:100" in text
    assert text.count("……还有 95 条:/my") == 2
    assert len(buttons(plan)) == 11  # five of each, and refresh
    assert all(fit.units(label) <= fit.LABEL_LIMIT for label in labels(plan))
    # the most overdue comes first
    assert "0099" in text.split("⚠️ 逾期的跟进:100")[1].splitlines()[1]
    await li.press("🔄 刷新", plan)
    assert plan_message(world, li)["text"] == text


async def test_long_names_in_english_fit_too(world: World) -> None:
    mike = await world.member(name="Mike", language="en")
    for n in range(30):
        made = await customer(world, mike, f"{'W' * 190} {n:03d}", due=TODAY)
        await complaint_for(world, mike, made, mike)
        await key_person(world, mike, made, f"{'K' * 95}{n:03d}", "1980-11-23")
    await mike.send("/today")
    plan = plan_message(world, mike)
    assert fit.units(plan["text"]) <= fit.MESSAGE_LIMIT
    assert "…and 25 more: /my" in plan["text"]
    assert plan["text"].count("…and 25 more") == 3
    assert "🎂 Birthdays this week: 30" in plan["text"]


async def test_a_deactivated_member_gets_no_plan(world: World) -> None:
    li = await world.member()
    await customer(world, li, "杭州明远机械有限公司", due=TODAY)
    actor = await staff_of(world.services.sessions, li)
    async with unit_of_work(world.services.sessions) as session:
        row = await session.get(Staff, actor.id)
        assert row is not None
        row.active = False
        session.add(row)
    await li.send("/today")
    assert li.last_text() == "您的账号已停用。如有疑问,请联系管理员。"
    assert not any("📅" in str(m.get("text", "")) for m in world.telegram.sent_to(li.id))
    await li.send_location(HOME.latitude, HOME.longitude)
    assert li.last_text() == "您的账号已停用。如有疑问,请联系管理员。"


@pytest.mark.parametrize("data", ["td:x", "td:r:1", "td:", "td:r:"])
async def test_stale_or_forged_today_buttons_expire(world: World, data: str) -> None:
    li = await world.member()
    message = {"message_id": 1, "date": 1_790_000_000, "chat": li.chat, "text": "plan"}
    await li.press_data(message, data)
    assert li.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_a_forged_card_button_from_the_plan_is_checked_by_the_card(world: World) -> None:
    li = await world.member()
    west = await world.member(team="West", name="Zhao")
    theirs = await customer(world, west, "西区客户", due=TODAY)
    message = {"message_id": 1, "date": 1_790_000_000, "chat": li.chat, "text": "plan"}
    await li.press_data(message, f"cu:{theirs.id}")
    assert li.last_answer() == "找不到该记录,或您无权查看。"


# ---------------------------------------------------------------------------------------------
# nearby


async def test_a_shared_location_lists_the_nearest_visible_customers(world: World) -> None:
    li = await world.member()
    west = await world.member(team="West", name="Zhao")
    near = await customer(world, li, "近的客户")
    far = await customer(world, li, "远的客户")
    unplaced = await customer(world, li, "没有位置的客户")
    other = await customer(world, west, "西区很近的客户")
    await place(world, li, near, north_of(HOME, 120))
    await place(world, li, far, north_of(HOME, 25_000))
    await place(world, west, other, HOME)
    for n in range(6):
        await place(world, li, await customer(world, li, f"客户{n}"), north_of(HOME, 1000 + n))
    await li.send("/today")
    await li.send_location(HOME.latitude, HOME.longitude)
    assert world.telegram.sent_to(li.id)[-2]["text"] == "📍 已收到位置。"
    text = li.last_text()
    assert text.splitlines()[0] == "📍 离您最近的 5 个客户:"
    assert text.splitlines()[1] == f"1. 近的客户 · {near.customer_no} · 120 米"
    assert "西区很近的客户" not in text and "没有位置的客户" not in text
    assert "远的客户" not in text  # six customers are nearer
    assert "1.0 公里" in text
    await li.press("1. 近的客户")
    assert near.customer_no in li.last_text()
    assert unplaced.location_sealed is None


async def test_nearby_in_english_with_none_placed(world: World) -> None:
    mike = await world.member(name="Mike", language="en")
    await customer_of(world, mike, name="Mingyuan Machinery")
    await mike.send_location(HOME.latitude, HOME.longitude)
    assert mike.last_text().startswith("No customers with a location to show.")


async def test_a_location_inside_a_flow_is_the_flows_answer(world: World) -> None:
    li = await world.member()
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.press("跳过")
    await li.send("/today")
    assert li.last_text() == "📍 看附近客户:请先完成或 /cancel 当前的录入,再发送位置。"
    await li.send_location(HOME.latitude, HOME.longitude)
    assert "离您最近" not in li.last_text()
    assert "拜访目的" in li.last_text()  # the visit went on to its next question


async def test_the_command_menu_and_help_offer_today(world: World) -> None:
    li = await world.member()
    await li.send("/help")
    assert "/today — 今日计划:待跟进、逾期、投诉、生日、附近客户" in li.last_text()
