"""Editing a customer from the card: at once on draft or rejected records, for approval on
approved ones, refused while under review or archived; values checked exactly as in /new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select

from conversations import edit, new_customer
from storage import customers as customer_store
from storage import outbox, vault
from storage.db import unit_of_work
from storage.models import Customer, Reminder, Review
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.flow_helpers import draft_of, labels, question, start_new_company
from tests.auxil.record_helpers import (
    COMPANY,
    audit_entries,
    card,
    customer_row,
    history_of,
    make_customer,
    sealed_of,
)
from tests.auxil.world import ADMIN_ID, World, start_app

LABEL = f"{COMPANY} · KH-2026-000001"


async def start_edit(person: Person, customer_id: int, field_label: str | None = None) -> None:
    """Press the card's Edit button, and pick a field if given."""
    await person.press_data(card(person), f"ce:{customer_id}")
    if field_label is not None:
        await person.press(field_label)


def notice(person: Person) -> list[str]:
    """The lines above the progress line of the last prompt (an error or a warning)."""
    lines = person.last_text().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("📝"))]


async def reviews(world: World) -> list[Review]:
    async with unit_of_work(world.services.sessions) as session:
        return list((await session.exec(select(Review).order_by(Review.id))).all())


async def duplicate_ids(world: World, person: Person, **query: Any) -> list[int]:
    actor = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        found = await customer_store.matches(
            session, keyring=world.services.keyring, team_id=actor.team_id, **query
        )
    return [d.customer_id for d in found]


async def test_a_rejected_customer_is_corrected_at_once(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, status="rejected", email="old@example.cn")
    await start_edit(sales, customer_id)
    assert question(sales) == f"要修改“{LABEL}”的哪一项?"
    assert "修改将立即生效。" in sales.last_text()
    assert {"客户名称", "邮箱", "电话", "上级主管单位", "开户银行", "同意日期"} - set(
        labels(sales.last_message())
    ) == {"同意日期"}  # consent details only when consent was given
    await sales.press("邮箱")
    assert question(sales) == "电子邮箱?"
    assert "档案中现为:o******。跳过将清空此项。" in sales.last_text()  # masked
    await sales.send("not-an-email")
    assert notice(sales) == ["❗ 这不是有效的电子邮箱。", "例如:sales@example.com", ""]
    await sales.send("New@Example.cn")
    summary = sales.last_text()
    assert "修改项: 邮箱" in summary and "邮箱: new@example.cn" in summary
    await sales.press("提交")
    assert sales.last_text() == f"✅ 已修改“{LABEL}”:\n• 邮箱:o****** → n******"
    assert labels(sales.last_message()) == ["✏️ 继续修改"]

    row = await customer_row(world.services.sessions, customer_id)
    assert (row.status, row.version) == ("rejected", 2)
    assert (await sealed_of(world, customer_id))["email"] == "new@example.cn"
    record, diff = (await history_of(world, customer_id))[-1]
    assert (record.entity, record.action, record.review_id) == ("customer", "update", None)
    assert diff == {"email": ["old@example.cn", "new@example.cn"]}
    [entry] = await audit_entries(world.services.sessions, "customer.update")
    assert entry.entity_id == customer_id and "example" not in (entry.detail or "")
    assert await draft_of(world.services.sessions, sales.id) is None


async def test_new_phones_are_indexed_and_the_old_ones_forgotten(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(
        world, sales, status="draft", phones=["+8613812345678"], tax_no="91350100M000100Y43"
    )
    await start_edit(sales, customer_id, "电话")
    assert "档案中现为:138****5678" in sales.last_text()
    await sales.send("13900002222, 0571-87654321")
    await sales.press("提交")
    assert (await sealed_of(world, customer_id))["phones"] == ["+8613900002222", "+8657187654321"]
    assert await duplicate_ids(world, sales, phones=["+8613900002222"]) == [customer_id]
    assert await duplicate_ids(world, sales, phones=["+8657187654321"]) == [customer_id]
    assert await duplicate_ids(world, sales, phones=["+8613812345678"]) == []
    # the tax number's index was rewritten with the phones and still finds the customer
    assert await duplicate_ids(world, sales, tax_no="91350100M000100Y43") == [customer_id]


async def test_an_approved_customer_gets_a_pending_change(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, sales, status="approved", email="old@example.cn")
    before = await customer_row(world.services.sessions, customer_id)
    await start_edit(sales, customer_id)
    assert "修改需经理审批" in sales.last_text()
    await sales.press("邮箱")
    await sales.send("new@example.cn")
    await sales.press("提交")
    assert sales.last_text().startswith(f"📨 修改已提交经理审批:{LABEL}\n• 邮箱:o****** → n******")
    assert "审批通过前,档案仍以原值为准" in sales.last_text()

    after = await customer_row(world.services.sessions, customer_id)
    assert after.model_dump() == before.model_dump()  # the approved values stand
    assert (await sealed_of(world, customer_id))["email"] == "old@example.cn"
    [_new, change] = await reviews(world)
    assert (change.kind, change.status, change.customer_id) == (
        "customer_change",
        "pending",
        customer_id,
    )
    assert change.submitted_by == (await staff_of(world.services.sessions, sales)).id
    assert change.team_id == after.team_id
    async with unit_of_work(world.services.sessions) as session:
        key = await vault.data_key(session, world.services.keyring, customer_id)
    assert vault.unseal(key, change.changes_sealed, table="reviews", row_id=change.id or 0) == {
        "email": ["old@example.cn", "new@example.cn"]
    }
    record, diff = (await history_of(world, customer_id))[-1]
    assert (record.action, record.review_id) == ("propose", change.id)
    assert diff == {"email": ["old@example.cn", "new@example.cn"]}
    # the deciders' notice went through the outbox with the change (no manager: the admin)
    async with unit_of_work(world.services.sessions) as session:
        notices = (
            await session.exec(select(Reminder).where(Reminder.kind == outbox.Kind.review_card))
        ).all()
    assert [(r.subject_id, r.status) for r in notices if r.subject_id == change.id] == [
        (change.id, "sent")
    ]
    assert any(m["text"].startswith("🔔") for m in world.telegram.sent_to(ADMIN_ID))
    [entry] = [
        e
        for e in await audit_entries(world.services.sessions, "review.submit")
        if e.entity_id == change.id
    ]
    assert '"customer_change"' in (entry.detail or "")

    # the field waits for the manager; the others may still be changed, each its own review
    await start_edit(sales, customer_id)
    assert "⏳ 以下项已有待审批的修改,暂不能再改:邮箱" in sales.last_text()
    assert "邮箱" not in labels(sales.last_message())
    await sales.send("邮箱")
    assert "请点击下面的按钮选择" in sales.last_text()
    await sales.press("网站")
    await sales.send("www.mingyuan.example.cn")
    await sales.press("提交")
    assert [(r.kind, r.status) for r in await reviews(world)][1:] == [
        ("customer_change", "pending"),
        ("customer_change", "pending"),
    ]


async def test_a_record_under_review_or_archived_cannot_be_edited(world: World) -> None:
    sales = await world.member()
    pending = await make_customer(world, sales, status="pending")
    archived = await make_customer(world, sales, status="archived", name="厦门海峰贸易有限公司")
    replies = await sales.press_data(card(sales), f"ce:{pending}")
    assert replies == []
    assert sales.last_answer() == (
        "这份档案正在等待经理审核,审核期间不能修改。如被退回,可以直接修改后重新提交。"
    )
    await sales.press_data(card(sales), f"ce:{archived}")
    assert sales.last_answer() == "这份档案已归档,只能查看,不能修改。"
    assert await draft_of(world.services.sessions, sales.id) is None


async def test_a_record_submitted_while_editing_refuses_the_change(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected", email="old@example.cn")
    await start_edit(sales, customer_id, "邮箱")
    await sales.send("new@example.cn")
    async with unit_of_work(world.services.sessions) as session:  # resubmitted meanwhile
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        customer.status, customer.version = "pending", customer.version + 1
        session.add(customer)
    await sales.press("提交")
    assert sales.last_text().startswith("这份档案正在等待经理审核")
    assert (await sealed_of(world, customer_id))["email"] == "old@example.cn"


async def test_forged_edit_of_another_teams_customer_is_refused_and_audited(
    world: World,
) -> None:
    owner = await world.member("salesperson", "East", "Li")
    customer_id = await make_customer(world, owner, status="rejected")
    before = len(await audit_entries(world.services.sessions, "access.denied"))
    for intruder in (
        await world.member("salesperson", "West", "Sun"),
        await world.member("salesperson", "East", "Zhao"),
        await world.member("manager", "West", "Qian"),
    ):
        replies = await intruder.press_data(card(intruder), f"ce:{customer_id}")
        assert replies == []
        assert intruder.last_answer() == "找不到该记录,或您无权查看。"
        assert await draft_of(world.services.sessions, intruder.id) is None
    denied = (await audit_entries(world.services.sessions, "access.denied"))[before:]
    assert [(e.entity, e.entity_id) for e in denied] == [("customer", customer_id)] * 3
    assert all('"purpose": "edit"' in (e.detail or "") for e in denied)
    await owner.press_data(card(owner), "ce:x1")
    assert owner.last_answer() == "这个按钮已过期,请使用最新的消息。"


async def test_the_teams_manager_and_an_admin_may_edit(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(manager, customer_id, "行业")
    await manager.send("机械制造")
    await manager.press("提交")
    admin = world.admin()
    await admin.send("/start")
    await start_edit(admin, customer_id, "地区")
    await admin.send("浙江 杭州")
    await admin.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert (row.industry, row.region, row.version) == ("机械制造", "浙江 杭州", 3)
    actors = [
        e.actor_telegram_id for e in await audit_entries(world.services.sessions, "customer.update")
    ]
    assert actors == [manager.id, admin.id]


async def _new_notice(world: World, field_clicks: list[str], bad: str) -> list[str]:
    """The error /new gives for `bad` at the question reached by `field_clicks`."""
    person = await world.member(name="New")
    await start_new_company(person, "宁波某某")
    for label in field_clicks:
        await person.press(label)
    await person.send(bad)
    return notice(person)


@pytest.mark.parametrize(
    ("field_label", "new_path", "bad"),
    [
        ("电话", [], "12345"),  # /new asks the phones right after the name
        ("电话", [], "1,2,3,4,5,6"),
        ("客户名称", [], "名" * 101),
        ("统一社会信用代码", None, "91350100M000100Y44"),
        ("下次跟进日期", None, "2020-01-01"),
    ],
)
async def test_values_are_checked_as_in_new(
    world: World, field_label: str, new_path: list[str] | None, bad: str
) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(sales, customer_id, field_label)
    await sales.send(bad)
    got = notice(sales)
    assert got and got[0].startswith("❗")
    if new_path is not None:  # the same answer to /new gets the same reason and example
        if field_label == "客户名称":
            person = await world.member(name="New")
            await person.send("/new")
            await person.press("企业")
            await person.send(bad)
            expected = notice(person)
        else:
            expected = await _new_notice(world, new_path, bad)
        assert got == expected
    assert question(sales) != f"要修改“{LABEL}”的哪一项?"  # the same question again


def test_the_edit_questions_are_the_new_customer_questions() -> None:
    """Validation is identical by construction: the same parser, choices and requiredness."""
    for step in new_customer.STEPS:
        if step.field in new_customer.GATES:
            continue
        mine = edit.FLOW.step(step.field)
        assert mine is not None, step.field
        assert (mine.kind, mine.parse, mine.choices, mine.required, mine.example) == (
            step.kind,
            step.parse,
            step.choices,
            step.required,
            step.example,
        )


async def test_back_returns_to_the_choice_of_field_and_cancel_keeps_the_record(
    world: World,
) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(sales, customer_id, "客户阶段")
    assert question(sales) == "客户目前处于哪个阶段?"
    assert "档案中现为:🍏 青苹果:需要培养" in sales.last_text()
    assert "跳过 »" not in labels(sales.last_message())  # required in /new, required here
    await sales.press("上一步")
    assert question(sales) == f"要修改“{LABEL}”的哪一项?"
    await sales.press("简称")
    await sales.press("跳过")  # an optional field: skipping keeps it (here: empty)
    assert "简称: —(不变)" in sales.last_text()
    await sales.press("✏️ 修改项")
    await sales.press("客户阶段")
    await sales.press("红苹果")
    assert "客户阶段: 🍎 红苹果" in sales.last_text() and "简称" not in sales.last_text()
    await sales.press("取消")
    assert sales.last_text() == "已取消,未保存任何内容。"
    row = await customer_row(world.services.sessions, customer_id)
    assert (row.stage, row.version) == ("green", 1)


async def test_clearing_an_optional_field_and_the_follow_up_default(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected", short_name="明远")
    # Skip never erases: it keeps the value; clearing is its own button (issue 13)
    await start_edit(sales, customer_id, "简称")
    await sales.press("跳过")
    assert "简称: 明远(不变)" in sales.last_text()
    await sales.press("提交")
    assert sales.last_text().startswith("新值与档案中的相同")
    assert (await customer_row(world.services.sessions, customer_id)).short_name == "明远"
    await start_edit(sales, customer_id, "简称")
    await sales.press("清空")
    await sales.press("提交")
    assert sales.last_text().endswith("• 简称:明远 → —")
    assert (await customer_row(world.services.sessions, customer_id)).short_name is None
    before = (await customer_row(world.services.sessions, customer_id)).next_followup_on
    await start_edit(sales, customer_id, "下次跟进日期")
    assert "清空" not in " ".join(labels(sales.last_message()))  # nothing to clear: no Clear
    await sales.press("跳过")
    await sales.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert row.next_followup_on == before


async def test_changing_the_kind_clears_company_only_fields(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(
        world, sales, status="rejected", parent_org="明远集团", tax_no="91350100M000100Y43"
    )
    await start_edit(sales, customer_id, "客户类型")
    await sales.press("个人")
    text = sales.last_text()
    assert "⚠️ 提交后将清空不再适用的项:上级主管单位, 统一社会信用代码" in text
    await sales.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert (row.kind, row.parent_org) == ("individual", None)
    assert "tax_no" not in await sealed_of(world, customer_id)
    assert await duplicate_ids(world, sales, tax_no="91350100M000100Y43") == []
    _, diff = (await history_of(world, customer_id))[-1]
    assert diff == {
        "kind": ["company", "individual"],
        "parent_org": ["明远集团", None],
        "tax_no": ["91350100M000100Y43", None],
    }
    # an individual is not offered company-only fields
    await start_edit(sales, customer_id)
    assert "上级主管单位" not in labels(sales.last_message())


async def test_giving_consent_asks_its_details_as_in_new(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(sales, customer_id, "已告知并同意")
    await sales.press("是")
    assert question(sales) == "客户以什么方式同意?"
    await sales.press("书面")
    await sales.send("2027-01-01")
    assert "日期不能晚于今天" in sales.last_text()
    await sales.send("2026-11-20")
    await sales.press("跳过")  # note
    await sales.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert row.consent_given is True
    sealed = await sealed_of(world, customer_id)
    assert (sealed["consent_method"], sealed["consent_on"]) == ("written", "2026-11-20")


async def test_restart_in_the_middle_of_an_edit_continues(world: World) -> None:
    sales = await world.member()
    customer_id = await make_customer(world, sales, status="rejected")
    await start_edit(sales, customer_id, "行业")
    await world.app.shutdown()

    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    sales.app, sales.telegram = world.app, telegram
    await sales.send("机械制造")
    assert "行业: 机械制造" in sales.last_text()
    await sales.press("提交")
    assert (await customer_row(world.services.sessions, customer_id)).industry == "机械制造"


async def test_two_people_editing_at_once_one_wins(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer_id = await make_customer(world, sales, status="rejected", email="old@example.cn")
    for who, value in ((sales, "li@example.cn"), (manager, "zhou@example.cn")):
        await start_edit(who, customer_id, "邮箱")
        await who.send(value)
    await asyncio.gather(sales.press("提交"), manager.press("提交"))
    texts = {p.last_text().split("\n")[0][:2] for p in (sales, manager)}
    assert texts == {"✅ ", "⚠️"}
    loser = sales if sales.last_text().startswith("⚠️") else manager
    assert "其他人已更改了这份档案" in loser.last_text()
    assert labels(loser.last_message()) == ["✏️ 继续修改"]
    row = await customer_row(world.services.sessions, customer_id)
    assert row.version == 2
    updates = [d for r, d in await history_of(world, customer_id) if r.action == "update"]
    assert len(updates) == 1 and updates[0]["email"][0] == "old@example.cn"


async def test_two_proposals_of_one_field_at_once_file_one_review(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer_id = await make_customer(world, sales, status="approved")
    for who, value in ((sales, "机械"), (manager, "装备制造")):
        await start_edit(who, customer_id, "行业")
        await who.send(value)
    await asyncio.gather(sales.press("提交"), manager.press("提交"))
    changes = [r for r in await reviews(world) if r.kind == "customer_change"]
    assert len(changes) == 1
    # (the team's manager also gets the review notice, so look through all that was sent)
    refusals = [
        m["text"]
        for p in (sales, manager)
        for m in world.telegram.sent_to(p.id)
        if m["text"].startswith("以下项已有待审批的修改")
    ]
    assert refusals == ["以下项已有待审批的修改,请等经理处理后再改:行业"]


async def test_in_english(world: World) -> None:
    sales = await world.member(name="Li", language="en")
    customer_id = await make_customer(
        world, sales, status="approved", name="Mingyuan Machinery", phones=["+8613812345678"]
    )
    await start_edit(sales, customer_id)
    assert (
        question(sales)
        == "Which field of Mingyuan Machinery · KH-2026-000001 do you want to change?"
    )
    assert "a manager must approve the change" in sales.last_text()
    await sales.press("Phone")
    assert "On record: 138****5678. Skip to clear it." in sales.last_text()
    await sales.send("13900002222")
    await sales.press("Submit")
    assert sales.last_text().splitlines()[:2] == [
        "📨 Change sent for a manager's approval: Mingyuan Machinery · KH-2026-000001",
        "• Phones: 138****5678 → 139****2222",
    ]
