"""Finding customers with /find and listing one's own with /my, one thumb at a time."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from conversations import find
from storage import search
from storage.db import unit_of_work
from storage.models import Draft, RecordStatus
from tests.auxil.customer_factory import add_customer, follow_up, set_columns
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import draft_of
from tests.auxil.world import World, start_app

EXPIRED = "这个按钮已过期,请使用最新的消息。"
LIST_EXPIRED = "这个列表已过期,请重新发送 /find。"


@pytest.fixture(autouse=True)
def fresh_indexes() -> None:
    search.forget_indexes()


async def customer(world: World, owner: Person, name: str, **values: Any) -> Any:
    return await add_customer(
        world.services.sessions, world.services.keyring, owner.id, name, **values
    )


def labels(message: dict[str, Any]) -> list[str]:
    return [text for text, _ in buttons(message)]


def opened(message: dict[str, Any]) -> list[str]:
    """The names on a list's customer buttons (`cu:`), in order."""
    return [t for t, d in buttons(message) if d.startswith("cu:")]


async def test_find_with_text_searches_at_once_and_opens_the_card(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    wanted = await customer(world, sales, "杭州明远机械有限公司", short_name="明远")
    await customer(world, sales, "宁波华泰电子有限公司")
    await sales.send("/find 明远")
    results = sales.last_message()
    assert results["text"].startswith("🔎 “明远”:找到 1 个客户。")
    assert "输入新的内容可以重新搜索" in results["text"]
    assert buttons(results)[0][1] == f"cu:{wanted.id}"
    assert opened(results) == [f"⏳ 杭州明远机械有限公司 · {wanted.customer_no}"]
    await sales.press("明远机械", results)
    assert sales.last_text().startswith("⏳ 杭州明远机械有限公司(明远)")
    assert sales.last_message() is not results
    assert opened(results)  # the list stays, to open another


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("明远", "part of the name"),
        ("明元机械", "a homophone from the input method"),
        ("杭州明元机械", "a wrong character in a longer name"),
        ("KH-{year}-000001", "the customer number"),
        ("kh{year}1", "the number, lower case, no dashes"),
        ("138 1234 5678", "a phone, spaced"),
        ("+86 138-1234-5678", "a phone, international"),
    ],
)
async def test_typing_after_find_searches_names_numbers_and_phones(
    world: World, typed: str, why: str
) -> None:
    sales = await world.member()
    wanted = await customer(
        world, sales, "杭州明远机械有限公司", short_name="明远", phones=["+8613812345678"]
    )
    await customer(world, sales, "宁波华泰电子有限公司")
    await sales.send("/find")
    home = sales.last_message()
    assert home["text"].startswith("🔎 查找客户")
    assert "最近的客户" in home["text"]
    year = wanted.customer_no.split("-")[1]
    await sales.send(typed.format(year=year))
    assert opened(sales.last_message())[:1] == [
        f"⏳ 杭州明远机械有限公司 · {wanted.customer_no}"
    ], why


async def test_a_search_without_result_says_so_and_listens_again(world: World) -> None:
    sales = await world.member()
    await customer(world, sales, "杭州明远机械有限公司")
    await sales.send("/find 东方红")
    text = sales.last_text()
    assert "没有找到与“东方红”相符的客户" in text
    assert "完整的客户编号" in text and "有权查看" in text
    assert opened(sales.last_message()) == []
    await sales.send("明远")
    assert len(opened(sales.last_message())) == 1
    await sales.send("13999999999")
    assert "没有找到与“13999999999”相符的客户" in sales.last_text()
    await sales.send("x" * 101)
    assert "太长了,最多 100 个字" in sales.last_text()


async def test_salesperson_finds_only_own_and_manager_the_team(world: World) -> None:
    li = await world.member("salesperson", "East", "Li")
    wang = await world.member("salesperson", "East", "Wang")
    chen = await world.member("salesperson", "West", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    mine = await customer(world, li, "明远机械", phones=["+8613812345678"])
    await customer(world, wang, "明远电子")
    await customer(world, chen, "明远化工")
    await li.send("/find 明远")
    assert [t.split(" · ")[0] for t in opened(li.last_message())] == ["⏳ 明远机械"]
    await zhou.send("/find 明远")
    assert sorted(t.split(" · ")[0] for t in opened(zhou.last_message())) == [
        "⏳ 明远机械",
        "⏳ 明远电子",
    ]
    for query in ("明远机械", "13812345678", mine.customer_no):
        await chen.send(f"/find {query}")
        assert "化工" in chen.last_text() or opened(chen.last_message()) == []
        assert all("机械" not in t for t in opened(chen.last_message()))
    admin = world.admin()
    await admin.send("/find 明远")
    assert len(opened(admin.last_message())) == 3


async def test_results_come_a_page_at_a_time(world: World) -> None:
    sales = await world.member()
    for n in range(19):
        await customer(world, sales, f"明远分公司{n:02d}")
    await sales.send("/find 明远")
    first = sales.last_message()
    assert "找到 19 个客户" in first["text"] and "第 1/3 页" in first["text"]
    page_one = opened(first)
    assert len(page_one) == 8
    await sales.press("›", first)
    second = sales.last_message()
    assert second["message_id"] == first["message_id"]  # turned in place
    assert "第 2/3 页" in second["text"]
    assert len(opened(second)) == 8 and not set(opened(second)) & set(page_one)
    await sales.press("›", second)
    assert len(opened(sales.last_message())) == 3
    await sales.press("‹", sales.last_message())
    assert "第 2/3 页" in sales.last_text()
    await sales.press("2/3", sales.last_message())  # the page it is on: no change, no error
    assert "第 2/3 页" in sales.last_text()


async def test_filters_by_class_stage_industry_region_and_status(world: World) -> None:
    sales = await world.member()
    await customer(world, sales, "明远机械", customer_class="A", stage="red", industry="机械")
    await customer(world, sales, "华泰电子", customer_class="B", stage="red", industry="电子")
    await customer(world, sales, "东方化工", customer_class="A", region="宁波", industry="化工")
    await sales.send("/find")
    await sales.press("筛选")
    menu = sales.last_message()
    assert "筛选条件(当前:无)" in menu["text"]
    assert labels(menu)[:5] == [
        "客户分类: 不限",
        "客户阶段: 不限",
        "行业: 不限",
        "地区: 不限",
        "状态: 不限",
    ]
    await sales.press("客户分类", menu)
    await sales.press("A 战略客户")
    listed = sales.last_message()
    assert listed["message_id"] == menu["message_id"]
    assert "符合条件的客户:2 个" in listed["text"] and "筛选:A 战略客户" in listed["text"]
    assert sorted(t.split(" · ")[0] for t in opened(listed)) == ["⏳ 东方化工", "⏳ 明远机械"]
    await sales.send("明远")  # typing searches within the filters
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["⏳ 明远机械"]
    await sales.send("华泰")
    assert "当前的筛选条件可能把它排除了" in sales.last_text()

    await sales.press("筛选(1)")
    await sales.press("清除全部")
    await sales.send("/find")
    await sales.press("筛选")
    await sales.press("行业")
    values = sales.last_message()
    assert labels(values)[:3] == ["化工", "机械", "电子"]
    await sales.press("电子", values)
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["⏳ 华泰电子"]
    await sales.press("筛选(1)")
    await sales.press("地区")
    await sales.press("宁波")
    assert "没有符合这些条件的客户" in sales.last_text()
    await sales.press("筛选(2)")
    await sales.press("行业: 电子")
    await sales.press("不限")
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["⏳ 东方化工"]
    await sales.press("筛选(1)")
    await sales.press("客户阶段")
    await sales.press("红苹果")
    assert "没有符合这些条件的客户" in sales.last_text()
    await sales.press("筛选(2)")
    await sales.press("清除全部")
    assert sales.last_text().startswith("🔎 查找客户")


async def test_status_filter_shows_archived_only_when_asked(world: World) -> None:
    sales = await world.member()
    kept = await customer(world, sales, "明远机械")
    gone = await customer(world, sales, "华泰电子")
    await set_columns(world.services.sessions, kept.id, status=RecordStatus.approved)
    await set_columns(world.services.sessions, gone.id, status=RecordStatus.archived)
    await sales.send("/find")
    await sales.press("筛选")
    await sales.press("状态")
    await sales.press("正式档案")
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["明远机械"]
    await sales.press("筛选(1)")
    await sales.press("状态")
    await sales.press("已归档")
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["🗄 华泰电子"]


async def test_hand_made_filter_buttons_are_refused(world: World) -> None:
    sales = await world.member()
    await customer(world, sales, "明远机械", industry="机械")
    await sales.send("/find")
    home = sales.last_message()
    sid = next(d for _, d in buttons(home) if d.startswith("ff:")).split(":")[1]
    for data in (
        f"fv:{sid}:c:Z",
        f"fv:{sid}:i:deadbeef",
        f"fv:{sid}:q:A",
        f"fk:{sid}:q",
        f"fp:{sid}:x",
        "fz:1",
        "fp:abc",
        "fm:x",
    ):
        await sales.press_data(home, data)
        assert sales.last_answer() == EXPIRED, data
    await sales.press_data(home, f"fp:{int(sid) + 7}:0")
    assert sales.last_answer() == LIST_EXPIRED


async def test_an_older_list_is_stale_and_done_ends_the_search(world: World) -> None:
    sales = await world.member()
    for n in range(10):
        await customer(world, sales, f"明远{n}")
    await sales.send("/find 明远")
    older = sales.last_message()
    await sales.send("明远1")
    await sales.press("›", older)
    assert sales.last_answer() == LIST_EXPIRED
    assert buttons(older) == []  # its buttons are taken off
    await sales.press("结束")
    assert sales.last_answer() == "已结束查找。"
    assert await draft_of(world.services.sessions, sales.id) is None
    await sales.send("明远")
    assert "我没有理解" in sales.last_text()


async def test_restart_in_the_middle_of_a_search(world: World) -> None:
    sales = await world.member()
    for n in range(10):
        await customer(world, sales, f"明远{n}")
    await sales.send("/find")
    await world.app.shutdown()
    search.forget_indexes()  # a new process knows nothing

    world.app = await start_app(world.services, world.telegram)
    sales.app = world.app
    await sales.send("明远")  # typed after the restart: still the search
    results = sales.last_message()
    assert "找到 10 个客户" in results["text"]
    await world.app.shutdown()

    world.app = await start_app(world.services, world.telegram)
    sales.app = world.app
    await sales.press("›", results)  # a button from before the restart
    assert "第 2/2 页" in sales.last_text()
    await sales.send("/start")
    assert "继续您上次未完成的填写" in sales.last_text()


async def test_find_while_another_flow_is_under_way_offers_it_first(world: World) -> None:
    sales = await world.member()
    await customer(world, sales, "明远机械")
    await sales.send("/new")
    await sales.press("企业")
    await sales.send("/find 明远")
    assert "未完成的“新建客户”" in sales.last_text()
    await sales.press("继续填写")
    assert "客户名称" in sales.last_text()
    async with unit_of_work(world.services.sessions) as session:
        flows = (await session.exec(select(Draft.flow))).all()
    assert flows == ["new"]  # the search did not overwrite it
    await sales.send("/find")
    await sales.press("放弃")
    assert "请输入客户名称的一部分" in sales.last_text()
    await sales.send("明远")
    assert len(opened(sales.last_message())) == 1


async def test_my_lists_overdue_then_today_then_later(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    other = await world.member("salesperson", "East", "Wang")
    days = {
        "以后": "2026-12-05",
        "没有日期": None,
        "今天": "2026-11-22",
        "逾期少": "2026-11-21",
        "逾期多": "2026-11-01",
        "下周": "2026-11-29",
    }
    for name, day in days.items():
        made = await customer(world, sales, name)
        await set_columns(
            world.services.sessions,
            made.id,
            next_followup_on=follow_up(day) if day else None,
            status=RecordStatus.approved,
        )
    archived = await customer(world, sales, "归档的")
    await set_columns(world.services.sessions, archived.id, status=RecordStatus.archived)
    await customer(world, other, "别人的", next_followup_on="2026-11-01")
    await sales.send("/my")
    listing = sales.last_message()
    assert listing["text"].splitlines() == ["📋 我的客户", "共 6 个 · 逾期 2 个 · 今天跟进 1 个"]
    assert labels(listing) == [
        "⚠️ 逾期多 · 逾期 21 天",
        "⚠️ 逾期少 · 逾期 1 天",
        "📌 今天 · 今天跟进",
        "下周 · 11-29",
        "以后 · 12-05",
        "没有日期",
    ]
    await sales.press("逾期多", listing)
    assert sales.last_text().startswith("✅ 逾期多")


async def test_my_pages_and_the_managers_team(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    west = await world.member("manager", "West", "Qian")
    for n in range(10):
        await customer(world, sales, f"客户{n:02d}", next_followup_on=f"2026-12-{n + 1:02d}")
    await sales.send("/my")
    first = sales.last_message()
    assert "第 1/2 页" in first["text"]
    assert len(opened(first)) == 8
    await sales.press("›", first)
    assert [t.split(" · ")[0] for t in opened(sales.last_message())] == ["⏳ 客户08", "⏳ 客户09"]
    assert sales.last_message()["message_id"] == first["message_id"]
    await sales.press_data(first, "fm:7")  # past the end: the last page
    assert "第 2/2 页" in sales.last_text()
    await manager.send("/my")
    assert manager.last_text().startswith("📋 团队的客户\n共 10 个")
    await west.send("/my")
    assert west.last_text() == "📋 团队的客户\n还没有客户。发送 /new 新建客户档案。"
    assert buttons(west.last_message()) == []


def test_find_is_a_flow_and_its_buttons_fit() -> None:
    assert find.FLOW.name == "find" and not find.FLOW.confirm
    longest = f"fv:{2**31}:i:{find.value_code('x' * 100)}"
    assert len(longest.encode()) <= 64


async def test_a_search_under_way_gives_way_to_new_work_without_asking(world: World) -> None:
    sales = await world.member()
    await sales.send("/find")
    await sales.send("/new")
    assert "未完成" not in sales.last_text()
    assert "客户是企业还是个人?" in sales.last_text()
    draft = await draft_of(world.services.sessions, sales.id)
    assert draft is not None and draft.flow == "new"
