"""An archived customer through the bot's surface: read-only for every action, out of /my and
the pool, still found by /find (marked 🗄 when searched for, listed by the status filter)."""

from __future__ import annotations

from typing import Any

from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.record_helpers import card, customer_row
from tests.auxil.world import World
from tests.conversations.test_life_cycle_requests import (
    approved,
    ask,
    audit_entries,
    detail,
    my_labels,
    open_card,
    review_cards,
)


def opened(message: dict[str, Any]) -> list[str]:
    return [t for t, d in buttons(message) if d.startswith("cu:")]


async def archived_customer(world: World) -> tuple[Person, Person, int]:
    """East: Li's customer, archived through the chat (Li asks, Chen approves)."""
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    cid = await approved(world, sales)
    await ask(sales, cid, "申请归档", "合作终止")
    await manager.press("通过", review_cards(world, manager.id)[-1])
    assert (await customer_row(world.services.sessions, cid)).status == "archived"
    return sales, manager, cid


async def test_every_action_on_an_archived_customer_is_refused(world: World) -> None:
    sales, manager, cid = await archived_customer(world)
    for who in (sales, manager):
        shown = await open_card(who, cid)
        data = [d for _label, d in buttons(shown)]
        assert not any(d.startswith(("cv:", "cc:", "ce:", "ar:a:")) for d in data), data
        assert f"ck:{cid}" in data and f"cvl:{cid}" in data and f"ch:{cid}" in data  # to read

    refusals = {
        f"ce:{cid}": "这份档案已归档,只能查看,不能修改。",
        f"cv:{cid}": "该客户已归档(只读)",
        f"cc:{cid}": "该客户已归档(只读)",
        f"kp:add:{cid}": "这份档案已归档",
        f"ar:a:{cid}": "只有正式档案可以归档",
    }
    for data, expected in refusals.items():
        sent = await sales.press_data(card(sales), data)
        said = " ".join([sales.last_answer() or "", *(m["text"] for m in sent)])
        assert expected in said, (data, said)
    await sales.send("/visit")  # the pickers leave it out or refuse it too
    assert "杭州明远机械有限公司" not in " ".join(opened(sales.last_message()))
    customer = await customer_row(world.services.sessions, cid)
    assert customer.status == "archived"

    # the key persons' list reads, with nothing to change
    await sales.press_data(card(sales), f"ck:{cid}")
    assert not any(d.startswith("kp:add:") for _label, d in buttons(sales.last_message()))


async def test_out_of_my_and_still_found_by_find(world: World) -> None:
    sales, manager, _cid = await archived_customer(world)
    other = await approved(world, sales, "宁波华泰电子有限公司")
    assert not any("明远" in label for label in await my_labels(sales))
    assert any("华泰" in label for label in await my_labels(sales))
    assert not any("明远" in label for label in await my_labels(manager))

    # searched for by name: found, marked as archived
    await sales.send("/find 明远")
    found = opened(sales.last_message())
    assert found == ["🗄 杭州明远机械有限公司 · KH-2026-000001"], found
    await sales.press("明远", sales.last_message())
    assert sales.last_text().startswith("🗄 杭州明远机械有限公司")

    # browsing by filters: only the status filter lists it
    await sales.send("/find")
    home = sales.last_message()
    assert "明远" not in " ".join(opened(home))  # not among the recent ones
    await sales.press("筛选", home)
    await sales.press("客户分类")
    await sales.press("B 重要客户")
    browsed = " ".join(opened(sales.last_message()))
    assert "宁波华泰电子有限公司" in browsed and "明远" not in browsed
    await sales.press("筛选(1)")
    await sales.press("状态")
    await sales.press("已归档")
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["🗄 杭州明远机械有限公司"]
    assert other


async def test_a_forged_request_for_a_customer_of_another_team_is_audited(world: World) -> None:
    sales, _manager, cid = await archived_customer(world)
    west = await world.member("manager", "West", "Qian")
    await west.press_data(card(west), f"ar:r:{cid}")
    assert west.last_answer() == "找不到该记录,或您无权查看。"
    [entry] = [
        e
        for e in await audit_entries(world.services.sessions, "access.denied")
        if e.actor_staff_id is not None and detail(e).get("purpose") == "reactivate_request"
    ]
    assert entry.entity_id == cid
    assert sales
