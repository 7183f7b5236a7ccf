"""Dates typed in words at every kind of date question land as the right date, in zh and en.

The world's clock: Sunday 22 November 2026, 10:00 in Shanghai (tests.auxil.world.NOW). So
明天 is 11-23, 下周一 / "next Monday" is 11-23 too (Monday of next week), 周五 for a past
question is 11-20 and for a future one 11-27.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from bot.context import Services
from storage.db import unit_of_work
from storage.models import Customer, Visit
from tests.auxil.field_helpers import customer_of, field_world, reload
from tests.auxil.flow_helpers import answer_required_rest, question, start_new_company
from tests.auxil.record_helpers import card, make_customer
from tests.auxil.world import World

FUTURE_EXAMPLE_ZH = "例如:明天、下周一、3天后、+7 或 12月24日"
PAST_EXAMPLE_ZH = "例如:今天、昨天、3天前、上周五 或 11月20日"
MOMENT_EXAMPLE_ZH = "例如:15:30、下午3点、昨天15:30 或 11月21日 15:30"
FUTURE_EXAMPLE_EN = "For example: tomorrow, next Monday, in 3 days, +7 or 12-24"
MOMENT_EXAMPLE_EN = "For example: 15:30, 3pm, yesterday 15:30 or 11-21 15:30"


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def only_visit(world: World) -> Visit:
    async with unit_of_work(world.services.sessions) as session:
        [visit] = (await session.exec(select(Visit))).all()
    return visit


async def test_a_visit_logged_with_words_in_chinese(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.send("昨天下午3点")
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send("跳过 »")
    await li.press("跳过其余")
    await li.press("✏️ 下次跟进日期")
    await li.send("下周一")
    card_text = li.last_text()
    assert "• 拜访时间: 2026-11-21 15:00" in card_text
    assert "• 下次跟进日期: 2026-11-23" in card_text
    await li.press("提交")
    visit = await only_visit(world)
    assert visit.visited_at.replace(tzinfo=UTC) == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    assert visit.next_followup_on == date(2026, 11, 23)
    assert (await reload(world, customer)).next_followup_on == date(2026, 11, 23)


async def test_a_visit_logged_with_words_in_english(world: World) -> None:
    li = await world.member("salesperson", "East", "Li", language="en")
    await customer_of(world, li, name="Mingyuan Machinery")
    await li.send("/visit")
    await li.press("Mingyuan")
    await li.press("On site")
    await li.send("yesterday 3:30pm")
    await li.send("Skip »")
    await li.press("Skip the remaining")
    await li.press("✏️ Next follow-up")
    await li.send("in 2 weeks")
    await li.press("Submit")
    visit = await only_visit(world)
    assert visit.visited_at.replace(tzinfo=UTC) == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    assert visit.next_followup_on == date(2026, 12, 6)


@pytest.mark.parametrize(
    ("typed", "visited_utc"),
    [
        ("周五 10:00", datetime(2026, 11, 20, 2, 0, tzinfo=UTC)),  # the latest Friday
        ("今天上午9点", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),
        ("3天前", datetime(2026, 11, 19, 2, 0, tzinfo=UTC)),  # a day alone: at this time of day
        ("11月21日下午3点半", datetime(2026, 11, 21, 7, 30, tzinfo=UTC)),
    ],
)
async def test_visit_times_in_words(world: World, typed: str, visited_utc: datetime) -> None:
    li = await world.member("salesperson", "East", "Li")
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.send(typed)
    await li.send("跳过 »")
    await li.press("跳过其余")
    await li.press("提交")
    assert (await only_visit(world)).visited_at.replace(tzinfo=UTC) == visited_utc


async def test_a_visit_time_in_unreadable_or_future_words_is_explained(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    asked = question(li)
    await li.send("改天")
    assert "这不是有效的日期或时间。" in li.last_text()
    assert MOMENT_EXAMPLE_ZH in li.last_text()
    await li.send("明天下午3点")
    assert "时间不能晚于现在。" in li.last_text()
    assert question(li) == asked


async def test_a_follow_up_in_the_past_is_refused_with_a_future_example(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    await li.send("09:00")
    await li.send("跳过 »")
    await li.press("跳过其余")
    await li.press("✏️ 下次跟进日期")
    await li.send("昨天")
    refusal = li.last_text()
    assert "日期不能早于今天。" in refusal
    assert FUTURE_EXAMPLE_ZH in refusal
    assert "昨天" not in refusal.split("例如")[1]
    await li.send("周五")  # a future question: the coming Friday
    assert "• 下次跟进日期: 2026-11-27" in li.last_text()


async def test_an_english_follow_up_refusal_gives_an_english_future_example(world: World) -> None:
    li = await world.member("salesperson", "East", "Li", language="en")
    await customer_of(world, li, name="Mingyuan Machinery")
    await li.send("/visit")
    await li.press("Mingyuan")
    await li.press("On site")
    await li.send("someday")
    assert MOMENT_EXAMPLE_EN in li.last_text()
    await li.send("09:00")
    await li.send("Skip »")
    await li.press("Skip the remaining")
    await li.press("✏️ Next follow-up")
    await li.send("3 days ago")
    assert "The date cannot be before today." in li.last_text()
    assert FUTURE_EXAMPLE_EN in li.last_text()
    assert "yesterday" not in li.last_text()
    await li.send("next Monday")
    await li.press("Submit")
    assert (await only_visit(world)).next_followup_on == date(2026, 11, 23)


async def test_a_new_customers_follow_up_in_english_words(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    await sales.send("Mingyuan Machinery Co., Ltd.")
    await sales.press("Skip the remaining")  # phones and every optional question after them
    for label in ("A ", "Red apple", "Visit", "Continue"):  # the essentials, then the summary
        await sales.press(label)
    await sales.press("✏️ Next follow-up")
    await sales.send("tomorrow")
    assert "2026-11-23" in sales.last_text()
    await sales.press("Submit")
    async with unit_of_work(world.services.sessions) as session:
        [customer] = (await session.exec(select(Customer))).all()
    assert customer.next_followup_on == date(2026, 11, 23)


async def test_a_consent_date_is_past_and_its_example_offers_no_plus_seven(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales, consent="是")
    await sales.press("口头")
    assert question(sales) == "客户同意的日期?"
    await sales.send("+7")
    refusal = sales.last_text()
    assert "日期不能晚于今天。" in refusal
    assert PAST_EXAMPLE_ZH in refusal
    assert "+7" not in refusal.split("例如")[1]
    await sales.send("3天前")
    assert question(sales) != "客户同意的日期?"
    await sales.press("跳过其余")
    assert "2026-11-19" in sales.last_text()


async def test_a_birthday_typed_with_an_english_month(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    customer_id = await make_customer(world, sales, name="Mingyuan Machinery")
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await sales.send("Wang")
    await sales.press("Skip")
    await sales.press("Decision maker")
    await sales.press("90%")
    await sales.send("13912345678")
    await sales.send("20 May 1980")
    assert question(sales) != "Birthday? (for birthday reminders)"
    await sales.press("Skip")  # the notes: the summary follows
    assert "1980-05-20" in sales.last_text()


async def test_a_birthday_in_the_future_is_refused(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    customer_id = await make_customer(world, sales, name="Mingyuan Machinery")
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await sales.send("Wang")
    await sales.press("Skip")
    await sales.press("Decision maker")
    await sales.press("90%")
    await sales.send("13912345678")
    await sales.send("tomorrow")
    assert "The date cannot be after today." in sales.last_text()
    assert question(sales) == "Birthday? (for birthday reminders)"
