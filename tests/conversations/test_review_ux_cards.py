"""Review cards (issue 13): the admin by their Telegram name, Resubmit on a rejected card,
and every card of a decided review (short notices, group cards, full cards a decider opened)
edited to show the decision, through the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import col, select

from bot import scheduler
from bot.context import OUTBOX_DELIVERY
from storage import outbox
from storage.db import unit_of_work
from storage.models import Customer, Reminder, Staff
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import customers
from tests.auxil.world import ADMIN_ID, World, start_app
from tests.conversations.test_review import cards, quick_customer, submit_customer, the_review


async def open_full_card(world: World, person: Any) -> dict[str, Any]:
    """Open the short notice's details: the full card, privately."""
    notice = cards(world, person.id)[-1]
    [data] = [d for _label, d in buttons(notice) if d.startswith("rv:o:")]
    await person.press_data(notice, data)
    return person.last_message()


async def edit_rows(world: World) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        query = select(Reminder).where(Reminder.kind == outbox.Kind.review_edit)
        return list((await session.exec(query.order_by(col(Reminder.id)))).all())


def message_now(world: World, message: dict[str, Any]) -> dict[str, Any]:
    return world.telegram.messages[(message["chat"]["id"], message["message_id"])]


# ---------------------------------------------------------------------------------------------
# the configured admin's name


async def test_the_configured_admin_is_named_as_telegram_names_them(world: World) -> None:
    admin = world.admin()  # "Boss" in Telegram; configured by id only
    sales = await world.member("salesperson", "Solo", "Li")  # a team without managers
    async with unit_of_work(world.services.sessions) as session:
        row = (await session.exec(select(Staff).where(Staff.telegram_id == ADMIN_ID))).one()
    assert row.display_name == f"admin {ADMIN_ID}"  # before they ever wrote to the bot

    await admin.send("/help")
    await submit_customer(sales)
    [card] = cards(world, admin.id)
    await admin.press("通过", card)
    assert "✅ 已由 Boss 审核通过" in cards(world, admin.id)[0]["text"]
    told = sales.last_text()
    assert "已由 Boss 审核通过" in told and "admin 9" not in told
    [customer] = await customers(world.services.sessions)
    await sales.send("/find")
    history = await _history_text(world, sales, customer)
    assert "Boss 审核通过" in history and f"admin {ADMIN_ID}" not in history


async def test_a_name_given_in_the_bot_is_never_overwritten(world: World) -> None:
    admin = world.admin("en")
    async with unit_of_work(world.services.sessions) as session:
        row = (await session.exec(select(Staff).where(Staff.telegram_id == ADMIN_ID))).one()
        row.display_name = "Wang Zong"  # renamed by the operator
        session.add(row)
    await admin.send("/help")
    async with unit_of_work(world.services.sessions) as session:
        row = (await session.exec(select(Staff).where(Staff.telegram_id == ADMIN_ID))).one()
    assert row.display_name == "Wang Zong"


async def _history_text(world: World, person: Any, customer: Customer) -> str:
    await person.press_data(person.last_message(), f"ch:{customer.id}")
    return person.last_text()


# ---------------------------------------------------------------------------------------------
# Resubmit on a rejected record's card


async def _rejected(world: World, manager: Any, sales: Any) -> Customer:
    await submit_customer(sales)
    await manager.press_data(cards(world, manager.id)[-1], f"rv:r:{(await the_review(world)).id}")
    await manager.send("缺少营业执照")
    [customer] = await customers(world.services.sessions)
    assert customer.status == "rejected"
    return customer


async def test_the_owner_resubmits_from_the_rejected_card(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    customer = await _rejected(world, manager, sales)
    await sales.press_data(sales.last_message(), f"cu:{customer.id}")
    card = sales.last_message()
    assert "缺少营业执照" in card["text"]
    assert ("📤 重新提交审核", f"rv:rs:{customer.id}") in buttons(card)

    await sales.press("重新提交审核", card)
    assert "已重新提交审核" in sales.last_text()
    assert (await customers(world.services.sessions))[0].status == "pending"
    assert "⏳ 等待审核" in cards(world, manager.id)[-1]["text"]  # a new card for the manager
    await sales.press_data(card, f"rv:rs:{customer.id}")  # the spent button again
    assert "不是“已退回”状态" in (sales.last_answer() or "")


async def test_only_the_owner_may_resubmit_and_a_forged_press_is_refused(world: World) -> None:
    manager = await world.member("manager", "East", "Chen", language="en")
    await manager.send("/help")
    sales = await world.member("salesperson", "East", "Li")
    other = await world.member("salesperson", "East", "Zhao")
    stranger = await world.member("manager", "West", "Wu")
    customer = await _rejected(world, manager, sales)

    await manager.press_data(manager.last_message(), f"cu:{customer.id}")
    card = manager.last_message()
    assert not any("Resubmit" in label for label, _data in buttons(card))  # not offered
    await manager.press_data(card, f"rv:rs:{customer.id}")  # forged: the manager is no owner
    assert manager.last_answer() == "Only the customer's owner can resubmit it."
    await other.press_data(card, f"rv:rs:{customer.id}")  # a colleague who cannot see it
    assert other.last_answer() == "找不到该记录,或您无权查看。"
    await stranger.press_data(card, f"rv:rs:{customer.id}")  # another team's manager
    assert stranger.last_answer() == "找不到该记录,或您无权查看。"
    assert (await customers(world.services.sessions))[0].status == "rejected"
    async with unit_of_work(world.services.sessions) as session:
        still = await session.get(Customer, customer.id)
    assert still is not None and still.status == "rejected"


async def test_resubmit_in_english(world: World) -> None:
    manager = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li", language="en")
    await sales.send("/help")  # the bot learns the language from the first update
    await quick_customer(world, await staff_of(world.services.sessions, sales), "Acme Trading")
    await manager.press("退回", cards(world, manager.id)[-1])
    await manager.send("Duplicate")
    assert "Reason: Duplicate" in sales.last_text()
    [customer] = await customers(world.services.sessions)
    await sales.press_data(sales.last_message(), f"cu:{customer.id}")
    await sales.press("Resubmit for review")
    assert (await customers(world.services.sessions))[0].status == "pending"


# ---------------------------------------------------------------------------------------------
# every card of a decided review shows the decision


async def test_every_card_a_decider_got_shows_who_decided(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou", language="en")
    sales = await world.member("salesperson", "East", "Li")
    await zhou.send("/help")
    await submit_customer(sales)
    zhou_notice = cards(world, zhou.id)[-1]
    zhou_full = await open_full_card(world, zhou)
    assert "• Phone: 138****5678" in zhou_full["text"] or "138****5678" in zhou_full["text"]
    chen_full = await open_full_card(world, chen)

    await chen.press("通过", chen_full)  # from the full card
    assert "✅ 已由 Chen 审核通过" in message_now(world, chen_full)["text"]
    for message in (zhou_notice, zhou_full):  # both of Zhou's cards, in English
        now = message_now(world, message)
        assert "Chen" in now["text"] and "pproved" in now["text"], now["text"]
        assert not any(d.startswith("rv:a:") for _label, d in buttons(now))
    [chen_notice] = cards(world, chen.id)[:1]
    assert "✅ 已由 Chen 审核通过" in chen_notice["text"]
    assert {r.status for r in await edit_rows(world)} == {"sent"}


async def test_a_deleted_card_does_not_stop_the_decision(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    zhou_full = await open_full_card(world, zhou)
    zhou_notice = cards(world, zhou.id)[-2]
    # Zhou deleted both cards from the chat: Telegram can no longer edit them
    for message in (zhou_full, zhou_notice):
        world.telegram.messages.pop((message["chat"]["id"], message["message_id"]))
    await chen.press("通过", cards(world, chen.id)[0])
    assert (await the_review(world)).status == "approved"
    assert "审核通过" in sales.last_text()  # the submitter was told all the same
    rows = await edit_rows(world)
    assert len(rows) == 2 and {r.status for r in rows} == {"sent"}  # done, not retried


async def test_two_managers_at_once_one_wins_and_the_other_card_shows_the_winner(
    world: World,
) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    li = await staff_of(world.services.sessions, sales)
    chen_id = (await staff_of(world.services.sessions, chen)).id
    for n in range(6):
        await quick_customer(world, li, f"同时审核 {n} 有限公司")
        chen_card = cards(world, chen.id)[-1]
        zhou_full = await open_full_card(world, zhou)
        await asyncio.gather(chen.press("通过", chen_card), zhou.press("通过", zhou_full))
        decided = await the_review(world)
        winner = "Chen" if decided.decided_by == chen_id else "Zhou"
        for message in (chen_card, zhou_full, cards(world, zhou.id)[-1]):
            now = message_now(world, message)
            assert f"✅ 已由 {winner} 审核通过" in now["text"], now["text"]
            assert not any(d.startswith("rv:") and ":a:" in d for _l, d in buttons(now))


async def test_a_crash_after_the_decision_still_edits_the_other_cards(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)
    zhou_notice = cards(world, zhou.id)[-1]

    async def died(ids: Any) -> None:  # the process stops right after the commit
        return None

    world.app.bot_data[OUTBOX_DELIVERY] = died
    await chen.press("通过", cards(world, chen.id)[0])
    assert "⏳" in message_now(world, zhou_notice)["text"]  # not edited yet
    assert [r.status for r in await edit_rows(world)] == ["pending"]

    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)  # same chats, a new process
    await scheduler.run_once(world.app)
    assert "✅ 已由 Chen 审核通过" in message_now(world, zhou_notice)["text"]
    assert [r.status for r in await edit_rows(world)] == ["sent"]
