"""Dates and times have plausible ranges, and a refusal says the range (SPEC section 8).

Before, `0001-01-01 00:05` passed as a visit time and then every Submit raised OverflowError;
a follow-up on 9999-12-31 and a birthday in year 1 were accepted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bot.context import Services
from storage.db import unit_of_work
from storage.models import Visit
from tests.auxil.field_helpers import customer_of, field_world
from tests.auxil.flow_helpers import answer_required_rest, question, start_new_company
from tests.auxil.record_helpers import card, make_customer
from tests.auxil.world import World

VISIT_TIME = "拜访时间?输入时间或日期,例如 15:30 或 11-21 15:30。刚拜访完?跳过即为现在。"


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


async def test_a_visit_time_before_2000_is_refused_and_the_earliest_one_submits(
    world: World,
) -> None:
    li = await world.member("salesperson", "East", "Li")
    await customer_of(world, li)
    await li.send("/visit")
    await li.press("明远")
    await li.press("上门拜访")
    asked = question(li)
    for typed in ("0001-01-01 00:05", "1999-12-31 23:59", "0001-01-01"):
        await li.send(typed)
        assert "时间须在 2000-01-01 至现在之间。" in li.last_text(), typed
        assert question(li) == asked
    await li.send("2000-01-01 00:00")
    assert question(li) == "在客户现场吗?用下方的按钮分享您现在的位置。"
    await li.send("跳过 »")  # the location's reply keyboard
    await li.press("跳过其余")
    await li.press("✏️ 下次跟进日期")
    await li.send("9999-12-31")
    assert "日期须在 2026-11-22 至 2031-11-22 之间。" in li.last_text()
    await li.send("2031-11-23")
    assert "日期须在 2026-11-22 至 2031-11-22 之间。" in li.last_text()
    await li.send("2031-11-22")
    await li.press("提交")
    assert li.last_text().startswith("✅ 拜访已记录")
    async with unit_of_work(world.services.sessions) as session:
        [visit] = (await session.exec(select(Visit))).all()
    assert visit.visited_at.year in (1999, 2000)  # 2000-01-01 00:00 in Shanghai, kept in UTC
    assert str(visit.next_followup_on) == "2031-11-22"


async def test_a_follow_up_years_ahead_is_refused_in_english(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    await sales.send("/new")
    await sales.press("Company")
    await sales.send("Mingyuan Machinery Co., Ltd.")
    await sales.press("Skip the remaining")
    for label in ("A ", "Red apple", "Visit", "Continue"):
        await sales.press(label)
    await sales.press("✏️ Next follow-up")
    await sales.send("9999-12-31")
    assert "The date must be between 2026-11-22 and 2031-11-22." in sales.last_text()


async def test_a_consent_date_is_between_2000_and_today(world: World) -> None:
    sales = await world.member()
    await start_new_company(sales)
    await answer_required_rest(sales, consent="是")
    await sales.press("口头")
    assert question(sales) == "客户同意的日期?"
    await sales.send("1999-12-31")
    assert "日期须在 2000-01-01 至 2026-11-22 之间。" in sales.last_text()
    await sales.send("2026-11-23")
    assert "日期不能晚于今天。" in sales.last_text()
    await sales.send("2026-11-22")
    assert question(sales) != "客户同意的日期?"


@pytest.mark.parametrize("typed", ["0001-01-01", "1899-12-31"])
async def test_a_birthday_in_year_one_is_refused_with_the_range(world: World, typed: str) -> None:
    sales = await world.member(name="Li", language="en")
    customer_id = await make_customer(world, sales, name="Mingyuan Machinery")
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await sales.send("Wang")
    await sales.press("Skip")
    await sales.press("Decision maker")
    await sales.press("90%")
    await sales.send("13912345678")
    await sales.send(typed)
    assert "The date must be between 1900-01-01 and 2026-11-22." in sales.last_text()
    assert question(sales) == "Birthday? (for birthday reminders)"
    await sales.send("1900-01-01")
    assert question(sales) != "Birthday? (for birthday reminders)"
