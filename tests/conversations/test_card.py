"""The customer card: masked values, the right buttons, audited reveals, history, refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import select

from bot.i18n import LANGUAGES, has_message
from conversations import card
from storage import vault
from storage.db import unit_of_work
from storage.models import (
    AuditEntry,
    ChangeRecord,
    RecordStatus,
    Review,
    ReviewKind,
    ReviewStatus,
)
from storage.types import utcnow
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import audit_actions
from tests.auxil.world import World

FULL = {
    "short_name": "明远",
    "industry": "机械制造",
    "region": "浙江 杭州",
    "phones": ["+8613812345678", "+8657187654321"],
    "email": "sales@example.com",
    "address": "杭州市西湖区文三路 100 号",
    "account_no": "6222020200112233",
    "tax_no": "91350100M000100Y43",
    "bank": "工商银行杭州分行",
    "customer_class": "A",
    "stage": "red",
    "next_followup_on": "2026-11-20",
}


async def customer_of(
    world: World, person: Person, name: str = "杭州明远机械有限公司", **values: Any
):
    return await add_customer(
        world.services.sessions, world.services.keyring, person.id, name, **values
    )


async def open_card(person: Person, customer_id: int) -> dict[str, Any]:
    """Press `cu:<id>` on the person's last message (a real or a hand-made button)."""
    anchor = person.telegram.sent_to(person.id)
    if not anchor:
        await person.send("/help")
    await person.press_data(person.last_message(), f"cu:{customer_id}")
    return person.last_message()


def callback_data(message: dict[str, Any]) -> list[str]:
    return [data for _, data in buttons(message)]


async def audit_entries(world: World, action: str) -> list[AuditEntry]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(select(AuditEntry).where(AuditEntry.action == action))
        return list(rows.all())


async def test_card_shows_masked_values_and_the_right_buttons(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, sales, **FULL)
    message = await open_card(sales, customer.id)
    text = message["text"]
    assert text.startswith("⏳ 杭州明远机械有限公司(明远)")
    assert f"客户编号: {customer.customer_no}" in text
    assert "状态: 待审核" in text
    assert "客户分类: A 战略客户" in text
    assert "客户阶段: 🍎 红苹果:即将成交" in text
    assert "负责人: Li" in text
    assert "下次跟进日期: 2026-11-20 ⚠️ 已逾期 2 天" in text
    assert "电话: 138****5678, 057****4321" in text
    assert "银行账号: **** 2233" in text
    assert "统一社会信用代码: **** 0Y43" in text
    assert "邮箱: s******" in text
    assert "地址: 杭******" in text
    for clear in ("13812345678", "8765", "sales@", "文三路", "6222", "M000100", "工商银行"):
        assert clear not in text
    data = callback_data(message)
    cid = customer.id
    expected = ["cv", "cc", "ck", "cvl", "ccl", "ci:l", "cr", "ch"]
    assert data == [f"{prefix}:{cid}" for prefix in expected]  # pending: no edit yet
    assert all(len(d.encode()) <= 64 for d in data)

    await set_columns(world.services.sessions, cid, status=RecordStatus.approved)
    approved = callback_data(await open_card(sales, cid))
    assert f"ce:{cid}" in approved
    await set_columns(world.services.sessions, cid, status=RecordStatus.archived)
    archived = await open_card(sales, cid)
    assert "只能查看" in archived["text"]
    assert not {f"cv:{cid}", f"cc:{cid}", f"ce:{cid}", f"ci:l:{cid}"} & set(callback_data(archived))


async def test_a_card_without_sensitive_values_offers_no_reveal(world: World) -> None:
    sales = await world.member(language="en")
    customer = await customer_of(world, sales, "Acme Trading")
    message = await open_card(sales, customer.id)
    assert "Status: Awaiting approval" in message["text"]
    assert "Sensitive values are hidden" not in message["text"]
    assert f"cr:{customer.id}" not in callback_data(message)
    await sales.press_data(message, f"cr:{customer.id}")
    assert sales.last_answer() == "This customer has no sensitive values filled in."


async def test_reveal_is_audited_protected_and_deleted_later(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, sales, **FULL)
    await sales.press("🔓", await open_card(sales, customer.id))
    menu = sales.last_message()
    assert "60 秒后自动删除" in menu["text"]
    assert callback_data(menu)[:2] == [f"cr:{customer.id}:phones", f"cr:{customer.id}:email"]
    assert await audit_entries(world, "customer.reveal") == []

    await sales.press("电话", menu)
    shown = sales.last_message()
    assert "138 1234 5678, 0571 8765 4321" in shown["text"]
    [sent] = [p for n, p in world.telegram.calls if n == "sendMessage" and "1234 5678" in p["text"]]
    assert sent["protect_content"] is True
    [entry] = await audit_entries(world, "customer.reveal")
    assert (entry.entity, entry.entity_id) == ("customer", customer.id)
    assert json.loads(entry.detail or "{}") == {"field": "phones"}
    assert entry.actor_staff_id == (await staff_of(world.services.sessions, sales.id)).id
    assert "1381234" not in (entry.detail or "")

    # the deletion is an outbox row (it survives a restart: tests/bot/test_follow_ups.py); the
    # job queue's job sends it on time
    [job] = world.app.job_queue.jobs(r"^reveal-delete:")
    assert job.name == f"reveal-delete:{sales.id}:{shown['message_id']}"
    minute_later = world.services.clock() + timedelta(seconds=61)
    world.services.clock = lambda: minute_later
    await job.run(world.app)
    deleted = [p for n, p in world.telegram.calls if n == "deleteMessage"]
    assert deleted == [{"chat_id": sales.id, "message_id": shown["message_id"]}]
    assert all("1234 5678" not in m["text"] for m in world.telegram.sent_to(sales.id))
    await job.run(world.app)  # already deleted: nothing more, no error
    assert len([p for n, p in world.telegram.calls if n == "deleteMessage"]) == 1

    await sales.press("银行账号", menu)
    assert "6222020200112233" in sales.last_text()
    assert len(await audit_entries(world, "customer.reveal")) == 2


async def test_reveal_of_an_empty_or_unknown_field(world: World) -> None:
    sales = await world.member()
    customer = await customer_of(world, sales, phones=["+8613812345678"])
    message = await open_card(sales, customer.id)
    await sales.press_data(message, f"cr:{customer.id}:wechat")
    assert "没有填写" in sales.last_text()
    await sales.press_data(message, f"cr:{customer.id}:name")
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    await sales.press_data(message, f"cr:{customer.id}:phones:more")
    assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert await audit_entries(world, "customer.reveal") == []


async def test_forged_buttons_for_another_teams_customer_are_refused_and_audited(
    world: World,
) -> None:
    owner = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, owner, **FULL)
    for intruder in (
        await world.member("salesperson", "West", "Chen"),
        await world.member("manager", "West", "Qian"),
        await world.member("salesperson", "East", "Wang"),  # same team, not the owner
    ):
        await intruder.send("/help")
        own = intruder.last_message()
        before = len(world.telegram.sent_to(intruder.id))
        for data in (
            f"cu:{customer.id}",
            f"cr:{customer.id}",
            f"cr:{customer.id}:phones",
            f"ch:{customer.id}",
            f"ch:{customer.id}:1",
        ):
            await intruder.press_data(own, data)
            assert intruder.last_answer() == "找不到该记录,或您无权查看。"
        assert len(world.telegram.sent_to(intruder.id)) == before
    assert world.telegram.sent_to(owner.id) == []  # nothing went anywhere else either
    denied = await audit_entries(world, "access.denied")
    assert len(denied) == 15
    assert {d.entity_id for d in denied} == {customer.id}
    purposes = [json.loads(d.detail or "{}")["purpose"] for d in denied[:5]]
    assert purposes == ["card", "card", "reveal", "history", "history"]
    assert await audit_entries(world, "customer.reveal") == []
    assert (await audit_actions(world.services.sessions))[-1] == "access.denied"


async def test_the_teams_manager_and_an_admin_may_open_and_reveal(world: World) -> None:
    owner = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, owner, **FULL)
    for viewer in (await world.member("manager", "East", "Zhou"), world.admin()):
        await viewer.send("/help")
        message = await open_card(viewer, customer.id)
        assert "138****5678" in message["text"]
        await viewer.press_data(message, f"cr:{customer.id}:tax_no")
        assert "91350100M000100Y43" in viewer.last_text()
    assert len(await audit_entries(world, "customer.reveal")) == 2


async def test_stale_and_malformed_card_buttons(world: World) -> None:
    sales = await world.member()
    customer = await customer_of(world, sales, **FULL)
    message = await open_card(sales, customer.id)
    for data in ("cu:abc", "cu:", "cu:1:2:3", "ch:1:x", "cu:99999999999999"):
        await sales.press_data(message, data)
        assert sales.last_answer() == "这个按钮已过期,请使用最新的消息。"
    await sales.press_data(message, "cu:424242")
    assert sales.last_answer() == "找不到该记录,或您无权查看。"
    await set_columns(world.services.sessions, customer.id, status=RecordStatus.destroyed)
    await sales.press_data(message, f"cu:{customer.id}")  # a destroyed one: its tombstone
    assert sales.last_text().startswith("🪦") and buttons(sales.last_message()) == []
    await sales.press_data(message, f"cr:{customer.id}:phones")
    assert sales.last_answer() == "找不到该记录,或您无权查看。"


async def test_a_card_asked_for_in_a_group_goes_to_the_private_chat(world: World) -> None:
    owner = await world.member()
    customer = await customer_of(world, owner, **FULL)
    group_message = {
        "message_id": 77,
        "date": 1_790_000_000,
        "chat": {"id": -100500, "type": "group", "title": "Managers"},
        "text": "review notice",
    }
    await owner.press_data(group_message, f"cu:{customer.id}")
    assert owner.last_answer() == "已私信发给您。"
    assert world.telegram.sent_to(-100500) == []
    assert owner.last_text().startswith("⏳ 杭州明远机械有限公司")
    await owner.press_data(group_message, f"cr:{customer.id}:phones")
    assert "138 1234 5678" in owner.last_text()
    assert world.telegram.sent_to(-100500) == []


async def test_history_shows_who_when_and_what_without_sensitive_values(world: World) -> None:
    owner = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Zhou")
    customer = await customer_of(world, owner, **FULL)
    async with unit_of_work(world.services.sessions) as session:
        manager_row = await staff_of(world.services.sessions, manager.id)
        review = Review(
            kind=ReviewKind.customer_change,
            status=ReviewStatus.approved,
            customer_id=customer.id,
            submitted_by=customer.owner_id,
            decided_by=manager_row.id,
            decided_at=utcnow(),
        )
        session.add(review)
        await session.flush()
        key = await vault.data_key(session, world.services.keyring, customer.id or 0)
        session.add(
            ChangeRecord(
                entity="customer",
                entity_id=customer.id or 0,
                customer_id=customer.id or 0,
                action="update",
                changed_by=customer.owner_id,
                review_id=review.id,
                diff_sealed=vault.seal(
                    key,
                    {
                        "name": ["杭州明远机械", "杭州明远机械有限公司"],
                        "phones": [["+8613812345678"], ["+8613900001111"]],
                        "customer_class": ["C", "A"],
                    },
                    table="change_records",
                    row_id=customer.id or 0,
                ),
            )
        )
    message = await open_card(owner, customer.id)
    await owner.press("变更记录", message)
    text = owner.last_text()
    assert text.startswith(f"🕘 杭州明远机械有限公司({customer.customer_no})的变更记录")
    update_entry, create_entry = text.split("\n\n")[1:3]
    assert "Li · 客户档案 · 修改" in update_entry
    assert "✅ Zhou 审核通过" in update_entry
    assert "客户名称: 杭州明远机械 → 杭州明远机械有限公司" in update_entry
    assert "电话: 138****5678 → 139****1111" in update_entry  # masked before → after
    assert "客户分类: C 普通客户 → A 战略客户" in update_entry
    assert "Li · 客户档案 · 新建" in create_entry
    assert "电话: 138****5678" in create_entry
    assert "银行账号: ****" in create_entry
    for clear in ("13812345678", "13900001111", "138 ", "6222", "sales@", "M000100"):
        assert clear not in text
    assert owner.last_message().get("reply_markup") is None  # one page only


async def test_history_pages_turn_in_place(world: World) -> None:
    owner = await world.member("salesperson", "East", "Li")
    customer = await customer_of(world, owner)
    async with unit_of_work(world.services.sessions) as session:
        key = await vault.data_key(session, world.services.keyring, customer.id or 0)
        for n in range(11):
            session.add(
                ChangeRecord(
                    entity="visit",
                    entity_id=n + 1,
                    customer_id=customer.id or 0,
                    action="create",
                    changed_by=customer.owner_id,
                    diff_sealed=vault.seal(
                        key,
                        {"purpose": [None, f"第 {n} 次拜访"]},
                        table="change_records",
                        row_id=customer.id or 0,
                    ),
                )
            )
    await owner.press_data(await open_card(owner, customer.id), f"ch:{customer.id}")
    history = owner.last_message()
    assert "第 1/3 页" in history["text"]
    assert "拜访记录 · 新建" in history["text"]
    assert callback_data(history) == [f"ch:{customer.id}:0", f"ch:{customer.id}:1"]
    count = len(world.telegram.sent_to(owner.id))
    await owner.press("›", history)
    turned = owner.last_message()
    assert turned["message_id"] == history["message_id"]
    assert len(world.telegram.sent_to(owner.id)) == count
    assert "第 2/3 页" in turned["text"]
    await owner.press("2/3", turned)  # the page it is on: nothing changes, no error
    await owner.press_data(turned, f"ch:{customer.id}:99")
    assert "第 3/3 页" in owner.last_text()


def test_every_card_message_exists_in_both_languages() -> None:
    """Keys the card builds from values: statuses, history entities, actions and reviews."""
    keys = [f"card.status.{s}" for s in RecordStatus]
    keys += [f"card.history.entity.{e}" for e in ("customer", "key_person", "visit", "complaint")]
    keys += [f"card.history.sensitive.{h}" for h in ("set", "changed", "cleared")]
    keys += [f"card.history.review.{s}" for s in ReviewStatus]
    assert [k for k in keys if not has_message(k)] == []
    assert LANGUAGES == ("zh", "en")
    assert card.REVEAL_SECONDS > 0
