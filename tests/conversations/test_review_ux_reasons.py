"""Rejecting (issue 13): quick reasons one tap away beside free text, and a manager halfway
through /new who presses Reject keeps both the reason and the draft."""

from __future__ import annotations

import copy
from typing import Any

from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, buttons
from tests.auxil.flow_helpers import customers, draft_of, question, start_new_company
from tests.auxil.world import World, start_app
from tests.conversations.test_review import cards, quick_customer, submit_customer, the_review


def reject_data(card: dict[str, Any]) -> str:
    [data] = [d for _label, d in buttons(card) if d.startswith("rv:r:")]
    return data


async def test_one_tap_rejects_with_a_quick_reason(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await manager.press("退回", cards(world, manager.id)[0])
    prompt = copy.deepcopy(manager.last_message())  # as the phone still shows it later
    labels = [label for label, _data in buttons(prompt)]
    for reason in ("信息不完整", "重复客户", "客户分类或阶段有误", "缺少客户同意"):
        assert any(label.startswith(reason) for label in labels), labels
    assert all(len(data.encode()) <= 64 for _label, data in buttons(prompt))

    await manager.press("重复客户", prompt)  # one tap: no confirmation after it
    review = await the_review(world)
    assert review.status == "rejected" and review.reason == "重复客户,系统中已有该客户"
    assert "原因:重复客户,系统中已有该客户" in sales.last_text()
    assert (await customers(world.services.sessions))[0].status == "rejected"
    assert await draft_of(world.services.sessions, manager.id) is None

    await manager.press("信息不完整", prompt)  # the spent prompt again: stale
    assert manager.last_answer() == "这个按钮已过期,请使用最新的消息。"
    assert (await the_review(world)).reason == "重复客户,系统中已有该客户"


async def test_quick_reasons_in_english_and_free_text_still_works(world: World) -> None:
    manager = await world.member("manager", "East", "Chen", language="en")
    await manager.send("/help")
    sales = await world.member("salesperson", "East", "Li")
    li = await staff_of(world.services.sessions, sales)
    await quick_customer(world, li, "Acme Trading")
    await manager.press("Reject", cards(world, manager.id)[-1])
    labels = [label for label, _data in buttons(manager.last_message())]
    assert any(label.startswith("Duplicate") for label in labels), labels
    assert any(label.startswith("Customer consent missing") for label in labels)
    await manager.send("The licence photo is unreadable")
    review = await the_review(world)
    assert (review.status, review.reason) == ("rejected", "The licence photo is unreadable")


async def test_forged_and_overlong_reasons_are_refused(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await manager.press("退回", cards(world, manager.id)[0])
    prompt = manager.last_message()
    token = buttons(prompt)[0][1].split(":")[1]
    await manager.press_data(prompt, f"w:{token}:c:99")  # no such quick reason
    assert manager.last_answer() == "这个按钮已过期,请使用最新的消息。"
    await manager.press_data(prompt, f"w:{token + '1'}:c:0")  # another prompt's token
    await manager.send("很长的原因" * 101)  # 505 characters
    assert "太长了,最多 500 个字" in manager.last_text()
    assert (await the_review(world)).status == "pending"
    await manager.send("x" * 500)  # exactly the limit
    assert (await the_review(world)).reason == "x" * 500


async def test_a_quick_reason_after_someone_else_decided_tells_who(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await zhou.press("退回", cards(world, zhou.id)[0])
    prompt = copy.deepcopy(zhou.last_message())
    await chen.press("通过", cards(world, chen.id)[0])
    await zhou.press("信息不完整", prompt)
    assert "已由 Chen 于" in zhou.last_text()
    assert (await the_review(world)).status == "approved"


# ---------------------------------------------------------------------------------------------
# rejecting while halfway through /new


async def test_reject_in_the_middle_of_new_keeps_the_draft(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    card = cards(world, manager.id)[0]
    await start_new_company(manager, "宁波海曙贸易有限公司")  # the manager's own new customer
    asked = question(manager)

    await manager.press("退回", card)
    assert question(manager).startswith("请说明退回")  # the reason first, no "discard?" offer
    assert not any("放弃" in label for label, _d in buttons(manager.last_message()))
    await manager.send("电话号码与执照不符")
    review = await the_review(world)
    assert (review.status, review.reason) == ("rejected", "电话号码与执照不符")
    assert question(manager) == asked  # the /new question again, where it was
    draft = await draft_of(world.services.sessions, manager.id)
    assert draft is not None and draft.flow == "new"
    await manager.press("跳过")  # and /new goes on from there
    assert question(manager) != asked


async def test_cancelling_the_reason_gives_back_the_draft(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    card = cards(world, manager.id)[0]
    await start_new_company(manager, "宁波海曙贸易有限公司")
    asked = question(manager)
    await manager.press("退回", card)
    await manager.send("/cancel")
    assert (await the_review(world)).status == "pending"
    assert question(manager) == asked
    await manager.press_data(card, reject_data(card))
    await manager.press("取消")  # the prompt's own Cancel button
    assert question(manager) == asked
    assert (await draft_of(world.services.sessions, manager.id)).flow == "new"


async def test_a_quick_reason_in_the_middle_of_new_resumes_it(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    await start_new_company(manager, "宁波海曙贸易有限公司")
    asked = question(manager)
    await manager.press("退回", cards(world, manager.id)[0])
    await manager.press("信息不完整")
    assert (await the_review(world)).status == "rejected"
    assert question(manager) == asked


async def test_restart_while_giving_the_reason_keeps_both(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    card = cards(world, manager.id)[0]
    await start_new_company(manager, "宁波海曙贸易有限公司")
    asked = question(manager)
    await manager.press("退回", card)
    await world.app.shutdown()

    telegram = FakeTelegram()
    world.app = await start_app(world.services, telegram)
    world.telegram = telegram
    for person in (manager, sales):
        person.app, person.telegram = world.app, telegram
    await manager.send("客户名称与执照不符")
    assert (await the_review(world)).reason == "客户名称与执照不符"
    assert "原因:客户名称与执照不符" in sales.last_text()
    assert question(manager) == asked


async def test_a_second_reject_while_a_reason_is_open_keeps_new_too(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    li = await staff_of(world.services.sessions, sales)
    await quick_customer(world, li, "第一家客户有限公司")
    first = cards(world, manager.id)[-1]
    await quick_customer(world, li, "第二家客户有限公司")
    second = cards(world, manager.id)[-1]
    await start_new_company(manager, "宁波海曙贸易有限公司")
    asked = question(manager)
    await manager.press_data(first, reject_data(first))
    await manager.press_data(second, reject_data(second))  # the first reason is still open
    await manager.press("放弃")  # drop the first reason, give the second
    assert "第二家客户有限公司" in question(manager)
    await manager.send("重复录入")
    assert (await the_review(world)).reason == "重复录入"
    assert question(manager) == asked
