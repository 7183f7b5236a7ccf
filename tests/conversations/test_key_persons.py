"""Key persons of a customer: added at the end of /new or from the card, edited, removed."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select

from storage import customers as customer_store
from storage import key_persons, search
from storage.db import unit_of_work
from storage.models import BlindIndex
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.flow_helpers import answer_required_rest, labels, question, start_new_company
from tests.auxil.record_helpers import (
    COMPANY,
    audit_entries,
    card,
    history_of,
    key_person_rows,
    make_customer,
    set_status,
)
from tests.auxil.world import World, start_app

TITLE = f"“{COMPANY} · KH-2026-000001”的关键联系人姓名?"


async def add_wang(person: Person, customer_id: int) -> None:
    """From the card: Key persons, Add, and a complete key person, submitted."""
    await person.press_data(card(person), f"ck:{customer_id}")
    await person.press("添加关键联系人")
    await person.send("王建国")
    await person.send("采购总监")
    await person.press("拍板人")
    await person.press("90%")
    await person.send("13912345678")
    await person.send("1975-03-08")
    await person.send("喜欢打羽毛球")
    await person.press("提交")


async def index_rows(world: World) -> list[BlindIndex]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(BlindIndex)
            .where(col(BlindIndex.key_person_id).is_not(None))
            .order_by(col(BlindIndex.id))
        )
        return list(rows.all())


async def found_by_phone(world: World, person: Person, phone: str) -> list[int]:
    actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        found = await search.search_customers(
            session, keyring=world.services.keyring, actor=actor, text=phone
        )
    return [c.id or 0 for c in found]


async def test_key_person_added_right_after_a_new_customer(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await start_new_company(sales)
    await answer_required_rest(sales)
    await sales.press("提交")
    assert labels(sales.last_message()) == ["➕ 添加关键联系人"]
    await sales.press("添加关键联系人")
    assert question(sales) == TITLE
    await sales.send("王建国")
    await sales.send("采购总监")
    assert labels(sales.last_message())[:5] == ["拍板人", "推荐人", "影响者", "使用者", "财务"]
    await sales.press("拍板人")
    await sales.press("90%")
    await sales.send("13912345678，0571-87654321")
    await sales.send("1975-03-08")
    await sales.send("喜欢打羽毛球")
    summary = sales.last_text()
    assert summary.startswith("📋 关键联系人")
    for line in (
        "姓名: 王建国",
        "职务: 采购总监",
        "角色: 拍板人",
        "影响力: 90% 决定性",
        "电话: 139 1234 5678, 0571 8765 4321",
        "生日: 1975-03-08",
        "备注: 喜欢打羽毛球",
    ):
        assert line in summary
    await sales.press("提交")
    assert sales.last_text() == f"✅ 已为“{COMPANY} · KH-2026-000001”添加关键联系人 王建国。"

    [person] = await key_person_rows(world.services.sessions)
    assert (person.name, person.title, person.role, person.influence, person.notes) == (
        "王建国",
        "采购总监",
        "decision_maker",
        90,
        "喜欢打羽毛球",
    )
    assert b"13912345678" not in (person.sealed or b"") and b"1975" not in (person.sealed or b"")
    customer_id = person.customer_id
    actor = await staff_of(world.services.sessions, sales)
    async with unit_of_work(world.services.sessions) as session:
        customer = await customer_store.visible_customer(
            session, actor=actor, customer_id=customer_id, purpose="test"
        )
        assert customer is not None
        [opened] = await key_persons.key_persons_of(
            session, keyring=world.services.keyring, actor=actor, customer=customer
        )
    assert opened.values["kp_phones"] == ["+8613912345678", "+8657187654321"]
    assert opened.values["kp_birthday"] == "1975-03-08"
    rows = await index_rows(world)
    assert len(rows) == 2 and {r.key_person_id for r in rows} == {person.id}
    assert await found_by_phone(world, sales, "139 1234 5678") == [customer_id]
    history = await history_of(world, customer_id)
    assert [(r.entity, r.action) for r, _ in history][-1] == ("key_person", "create")
    assert history[-1][1]["kp_name"] == [None, "王建国"]
    assert [
        e.entity_id for e in await audit_entries(world.services.sessions, "key_person.create")
    ] == [person.id]

    # the list shows the phones masked and the birthday only as known
    await sales.press("查看关键联系人")
    listing = sales.last_text()
    assert listing.splitlines()[:2] == [
        f"👥 关键联系人 · {COMPANY} · KH-2026-000001",
        "1. 王建国 · 采购总监 · 拍板人 · 90% 决定性",
    ]
    assert "139****5678" in listing and "13912345678" not in listing
    assert "1975" not in listing and "生日已登记" in listing
    assert labels(sales.last_message()) == ["➕ 添加关键联系人", "✏️ 王建国", "🗑 王建国"]


async def test_bad_values_back_skip_and_cancel(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales)
    await sales.press_data(card(sales), f"ck:{customer_id}")
    assert "还没有登记关键联系人" in sales.last_text()
    await sales.press("添加关键联系人")
    assert "跳过 »" not in labels(sales.last_message())  # the name is required
    await sales.send("王" * 101)
    assert "太长了,最多 100 个字" in sales.last_text()
    await sales.send("王建国")
    await sales.press("上一步")
    assert question(sales) == TITLE
    await sales.send("王建")
    await sales.press("跳过")  # title
    await sales.send("随便")  # text where a button is expected
    assert "请点击下面的按钮选择" in sales.last_text()
    await sales.press("推荐人")
    await sales.press("跳过")  # influence
    await sales.send("12345")
    assert "这不是有效的电话号码" in sales.last_text() and "例如:13812345678" in sales.last_text()
    assert question(sales) == "联系电话?多个号码用逗号隔开。"
    await sales.send_photo()
    assert "需要文字回答" in sales.last_text()
    await sales.send("13912345678")
    await sales.send("2027-01-01")
    assert "日期不能晚于今天" in sales.last_text() and "例如:1980-05-20" in sales.last_text()
    await sales.send("1975-02-30")
    assert "这不是有效的日期" in sales.last_text()
    assert question(sales) == "生日?(用于生日提醒)"
    await sales.press("跳过其余")
    summary = sales.last_text()
    assert "姓名: 王建" in summary and "职务: —" in summary and "生日: —" in summary
    await sales.press("取消")
    assert sales.last_text() == "已取消,未保存任何内容。"
    assert await key_person_rows(world.services.sessions) == []
    assert await index_rows(world) == []


async def test_edit_a_key_person_from_the_list(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(sales, customer_id)
    await sales.press("查看关键联系人")
    await sales.press("✏️ 王建国")
    # the flow opens at the summary with the current values, shown in clear: an audited view
    summary = sales.last_text()
    assert "电话: 139 1234 5678" in summary and "生日: 1975-03-08" in summary
    [view] = await audit_entries(world.services.sessions, "key_person.view_sensitive")
    assert '"fields": ["kp_birthday", "kp_phones"]' in (view.detail or "")
    assert "1975" not in (view.detail or "") and "139" not in (view.detail or "")
    await sales.press("✏️ 电话")
    assert "当前值:139 1234 5678" in sales.last_text()
    await sales.send("138-0000-1111")
    await sales.press("✏️ 影响力")
    await sales.press("70%")
    assert "影响力: 70% 较大" in sales.last_text()
    await sales.press("提交")
    assert sales.last_text() == f"✅ 已保存对关键联系人 王建国 的修改({COMPANY} · KH-2026-000001)。"

    [person] = await key_person_rows(world.services.sessions)
    assert person.version == 2 and person.influence == 70
    assert await found_by_phone(world, sales, "13800001111") == [customer_id]
    assert await found_by_phone(world, sales, "13912345678") == []  # the old index is gone
    [row] = await index_rows(world)
    assert row.key_person_id == person.id
    record, diff = (await history_of(world, customer_id))[-1]
    assert (record.entity, record.entity_id, record.action) == ("key_person", person.id, "update")
    assert diff == {"kp_influence": [90, 70], "kp_phones": [["+8613912345678"], ["+8613800001111"]]}
    [entry] = await audit_entries(world.services.sessions, "key_person.update")
    assert entry.entity_id == person.id and "138" not in (entry.detail or "")

    # opening it again and submitting as it is changes nothing
    await sales.press("查看关键联系人")
    await sales.press("✏️ 王建国")
    await sales.press("提交")
    assert sales.last_text() == "没有任何改动,王建国 的信息保持不变。"
    [person] = await key_person_rows(world.services.sessions)
    assert person.version == 2


async def test_remove_asks_first_and_a_stale_confirmation_expires(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales)
    await add_wang(sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    await sales.press("查看关键联系人")
    await sales.press("🗑 王建国")
    assert sales.last_text() == (
        f"确定要从“{COMPANY} · KH-2026-000001”的关键联系人中删除 王建国 吗?"
        "其资料将被永久清除,变更记录只保留“已删除”这一事实。"
    )
    await sales.press("保留")
    assert sales.last_answer() == "已保留"
    assert len(await key_person_rows(world.services.sessions)) == 1

    await sales.press_data(card(sales), f"kp:del:{customer_id}:{person.id}")
    confirmation = sales.last_message()
    stale = dict(confirmation)
    await sales.press("确认删除")
    assert confirmation["text"].endswith("→ 已删除 王建国")  # the question notes the answer
    assert "reply_markup" not in confirmation
    assert "还没有登记关键联系人" in sales.last_text()
    assert await key_person_rows(world.services.sessions) == []
    assert await index_rows(world) == []
    record, diff = (await history_of(world, customer_id))[-1]
    assert (record.entity, record.action) == ("key_person", "remove")
    assert diff is None  # the removal is kept, not the removed values (issue 11 item 7)
    assert len(await audit_entries(world.services.sessions, "key_person.remove")) == 1

    await sales.press("确认删除", stale)
    assert sales.last_answer() == "找不到这位联系人,可能已被删除。"


async def test_a_confirmation_for_an_older_version_is_refused(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales)
    await add_wang(sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    await sales.press_data(card(sales), f"kp:del:{customer_id}:{person.id}")
    confirmation = dict(sales.last_message())
    await sales.press_data(card(sales), f"kp:edit:{customer_id}:{person.id}")
    await sales.press("✏️ 职务")
    await sales.send("副总经理")
    await sales.press("提交")
    await sales.press("确认删除", confirmation)
    assert sales.last_answer() == (
        "⚠️ 在您操作期间,其他人已修改了这位联系人,您的修改未保存。请重新打开后再改。"
    )
    [person] = await key_person_rows(world.services.sessions)
    assert person.title == "副总经理"


async def test_forged_buttons_for_another_teams_customer_are_refused_and_audited(
    world: World,
) -> None:
    owner = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, owner)
    await add_wang(owner, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    before = len(await audit_entries(world.services.sessions, "access.denied"))

    outsider = await world.member("salesperson", "West", "Sun")
    colleague = await world.member("salesperson", "East", "Zhao")  # same team, not the owner
    west_manager = await world.member("manager", "West", "Qian")
    forged = [
        f"ck:{customer_id}",
        f"kp:add:{customer_id}",
        f"kp:edit:{customer_id}:{person.id}",
        f"kp:del:{customer_id}:{person.id}",
        f"kp:rm:{customer_id}:{person.id}:1",
    ]
    for intruder in (outsider, colleague, west_manager):
        for data in forged:
            replies = await intruder.press_data(card(intruder), data)
            assert replies == []  # nothing sent: only an alert
            assert intruder.last_answer() == "找不到该记录,或您无权查看。"
    denied = await audit_entries(world.services.sessions, "access.denied")
    assert len(denied) - before == 3 * len(forged)
    assert all(e.entity == "customer" and e.entity_id == customer_id for e in denied[before:])
    assert all("王" not in (e.detail or "") for e in denied)
    [still] = await key_person_rows(world.services.sessions)
    assert (still.version, still.title) == (1, "采购总监")

    # naming another customer's key person on one's own customer is refused and audited too
    own = await make_customer(world, outsider, name="厦门海峰贸易有限公司")
    await outsider.press_data(card(outsider), f"kp:edit:{own}:{person.id}")
    assert outsider.last_answer() == "找不到这位联系人,可能已被删除。"
    [entry] = [
        e
        for e in await audit_entries(world.services.sessions, "access.denied")
        if e.entity == "key_person"
    ]
    assert entry.entity_id == person.id
    # and a malformed payload is just an expired button
    await outsider.press_data(card(outsider), "kp:edit:abc")
    assert outsider.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_managers_and_admins_manage_key_persons_of_the_teams_customers(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(manager, customer_id)
    admin = world.admin()
    await admin.send("/start")
    await admin.press_data(card(admin), f"ck:{customer_id}")
    await admin.press("🗑 王建国")
    await admin.press("确认删除")
    assert await key_person_rows(world.services.sessions) == []
    [created] = await audit_entries(world.services.sessions, "key_person.create")
    assert created.actor_telegram_id == manager.id
    [removed] = await audit_entries(world.services.sessions, "key_person.remove")
    assert removed.actor_telegram_id == admin.id


async def test_an_archived_customers_key_persons_are_read_only(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="approved")
    await add_wang(sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    await set_status(world.services.sessions, customer_id, "archived")
    await sales.press_data(card(sales), f"ck:{customer_id}")
    assert "只能查看" in sales.last_text() and "1. 王建国" in sales.last_text()
    assert labels(sales.last_message()) == []
    for data in (f"kp:add:{customer_id}", f"kp:edit:{customer_id}:{person.id}"):
        await sales.press_data(card(sales), data)
        assert sales.last_answer() == "这份档案已归档,不能再修改关键联系人。"
    await set_status(world.services.sessions, customer_id, "destroyed")
    await sales.press_data(card(sales), f"ck:{customer_id}")
    assert sales.last_answer() == "找不到该记录,或您无权查看。"


async def test_restart_in_the_middle_of_adding_continues(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales)
    await sales.press_data(card(sales), f"kp:add:{customer_id}")
    await sales.send("王建国")
    await world.app.shutdown()

    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    sales.app, sales.telegram = world.app, telegram
    await sales.send("采购总监")  # the answer to the question asked before the restart
    assert question(sales) == "在采购决策中是什么角色?"
    await sales.press("跳过其余")
    await sales.press("提交")
    [person] = await key_person_rows(world.services.sessions)
    assert (person.name, person.title, person.customer_id) == ("王建国", "采购总监", customer_id)


async def test_two_people_editing_one_key_person_at_once(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer_id = await make_customer(world, sales)
    await add_wang(sales, customer_id)
    [person] = await key_person_rows(world.services.sessions)
    for who, title in ((sales, "总经理"), (manager, "董事长")):
        await who.press_data(card(who), f"kp:edit:{customer_id}:{person.id}")
        await who.press("✏️ 职务")
        await who.send(title)
    await asyncio.gather(sales.press("提交"), manager.press("提交"))
    outcomes = sorted(p.last_text().split(" ")[0] for p in (sales, manager))
    assert outcomes == ["⚠️", "✅"]
    [person] = await key_person_rows(world.services.sessions)
    assert person.version == 2 and person.title in ("总经理", "董事长")
    updates = [r for r, _ in await history_of(world, customer_id) if r.action == "update"]
    assert len(updates) == 1


async def test_in_english(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    customer_id = await make_customer(world, sales, name="Mingyuan Machinery")
    await sales.press_data(card(sales), f"ck:{customer_id}")
    assert (
        sales.last_text()
        == "👥 Key persons · Mingyuan Machinery · KH-2026-000001\nNo key persons yet."
    )
    await sales.press("Add key person")
    assert question(sales) == "Name of the key person at Mingyuan Machinery · KH-2026-000001?"
    await sales.send("Wang")
    await sales.press("Skip")
    await sales.press("Decision maker")
    await sales.press("90%")
    await sales.send("13912345678")
    await sales.send("next year")  # read as a date since issue 13: a birthday is not ahead
    assert "The date cannot be after today.\nFor example: 1980-05-20" in sales.last_text()
    await sales.press("Skip the remaining")
    await sales.press("Submit")
    assert (
        sales.last_text() == "✅ Wang added as a key person of Mingyuan Machinery · KH-2026-000001."
    )
    await sales.press("Key persons")
    assert sales.last_text().splitlines()[1:] == [
        "1. Wang · Decision maker · 90% decisive",
        "   📞 139****5678",
    ]
