"""Completing a record saved with its essentials only (issue 13): the card's "Complete this
record" walks only the missing fields through the edit machinery, Skip keeps, the counter
holds, and pending, archived, forged or other people's records are refused."""

from __future__ import annotations

import re

from tests.auxil.fake_telegram import Person
from tests.auxil.flow_helpers import labels, question
from tests.auxil.record_helpers import card, customer_row, make_customer, sealed_of
from tests.auxil.world import World

COUNTER = re.compile(r"· (?P<section>[^·\n]+) · (第 )?(?P<n>\d+)(/| of )(?P<m>\d+)")


async def open_card(person: Person, customer_id: int) -> dict:
    await person.press_data(card(person), f"cu:{customer_id}")
    return person.last_message()


async def test_the_card_offers_completing_and_it_walks_only_the_missing_fields(
    world: World,
) -> None:
    sales = await world.member()
    customer_id = await make_customer(
        world, sales, status="rejected", short_name="明远", website="www.example.cn"
    )
    shown = await open_card(sales, customer_id)
    assert "📝 补全档案" in labels(shown)
    await sales.press("补全档案", shown)
    asked: list[str] = []
    totals: dict[str, set[int]] = {}
    for _ in range(40):
        text = sales.last_text()
        if text.startswith("📋"):
            break
        found = COUNTER.search(text)
        assert found is not None, text
        totals.setdefault(found["section"], set()).add(int(found["m"]))
        asked.append(question(sales))
        assert "上一步" not in labels(sales.last_message()) or len(asked) > 1  # none on the first
        if question(sales) == "所属行业?":
            await sales.send("机械制造")
        elif question(sales).startswith("是否已告知"):
            await sales.press("否")
        else:
            await sales.press("跳过")
    assert all(len(m) == 1 for m in totals.values()), totals
    assert "简称是?" not in asked and "网站?" not in asked  # filled: not asked again
    assert "客户名称(全称)是?" not in asked  # an essential
    assert "所属行业?" in asked
    await sales.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert row.industry == "机械制造"
    assert (row.short_name, row.website) == ("明远", "www.example.cn")  # Skip never erases


async def test_a_complete_record_and_a_pending_one_offer_no_completing(world: World) -> None:
    sales = await world.member()
    done = await make_customer(
        world,
        sales,
        status="approved",
        industry="机械",
        region="浙江",
        address="杭州",
        consent_given=True,
        consent_method="written",
        consent_on="2026-11-01",
    )
    assert "📝 补全档案" not in labels(await open_card(sales, done))
    pending = await make_customer(world, sales, status="pending", name="宁波某某")
    assert "📝 补全档案" not in labels(await open_card(sales, pending))
    await sales.press_data(card(sales), f"cm:{pending}")  # forged: the record is under review
    assert sales.last_answer() is not None and "审核" in sales.last_answer()


async def test_another_teams_record_cannot_be_completed_by_a_forged_button(world: World) -> None:
    owner = await world.member("salesperson", "West", "Sun")
    customer_id = await make_customer(world, owner, status="rejected")
    manager = await world.member("manager", "East", "Zhou")
    await manager.press_data(card(manager), f"cm:{customer_id}")
    assert manager.last_answer() == "找不到该客户,或您无权查看。" or "找不到" in (
        manager.last_answer() or ""
    )
    await manager.press_data(card(manager), "cm:notanumber")
    assert manager.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_completing_an_approved_record_proposes_the_change_in_english(
    world: World,
) -> None:
    sales = await world.member(language="en")
    customer_id = await make_customer(world, sales, status="approved")
    shown = await open_card(sales, customer_id)
    assert "📝 Complete this record" in labels(shown)
    await sales.press("Complete this record", shown)
    assert "Details · 1 of" in sales.last_text()
    await sales.send("Machinery")  # the industry
    await sales.press("Skip the remaining")
    assert sales.last_text().startswith("📋")
    await sales.press("Submit")
    assert "Machinery" in sales.last_text()
    row = await customer_row(world.services.sessions, customer_id)
    assert row.industry is None  # proposed: the approved values stand until a manager decides
    sealed = await sealed_of(world, customer_id)
    assert sealed.get("address") is None


async def test_skipping_everything_changes_nothing(world: World) -> None:
    sales = await world.member(language="en")
    customer_id = await make_customer(world, sales, status="rejected", short_name="MY")
    await sales.press("Complete this record", await open_card(sales, customer_id))
    await sales.press("Skip the remaining")
    await sales.press("Submit")
    assert sales.last_text() == "The new value is the same as on record; nothing changed."
    assert (await customer_row(world.services.sessions, customer_id)).short_name == "MY"
