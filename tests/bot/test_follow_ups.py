"""Follow-ups a crash cannot lose (issue 8, item 7): the outbox, across restarts.

The managers' notice of a new submission and the submitter's confirmation are written with the
record; the deletion of a revealed value with the reveal's audit entry. A bot that dies right
after the commit, or cannot reach Telegram then, sends them after its restart, once each.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot import scheduler
from bot.cli import main
from bot.context import OUTBOX_DELIVERY
from bot.settings import Settings
from storage import outbox
from storage.db import unit_of_work
from storage.models import Reminder, ReviewNotice
from tests.auxil.customer_factory import add_customer
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.flow_helpers import customers, start_new_company
from tests.auxil.record_helpers import card, make_customer
from tests.auxil.settings_env import clean_settings_env
from tests.auxil.world import NOW, World, start_app
from tests.conversations.test_review import GROUP_ID, cards, in_group, submit_customer

CONFIRMATION = "已提交审核"
CLEAR_PHONE = "138 1234 5678"


class Crash(BaseException):
    """The process dies: nothing after this point runs (not an Exception, so nobody catches it)."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The admins' daily audit head is tested in test_audit_head.py; here it would be one more
    grouped reminder among the follow-ups counted."""
    return settings.model_copy(update={"AUDIT_HEAD_DAYS": 0})


async def restart(world: World, *, same_telegram: bool = False) -> tuple[Any, FakeTelegram]:
    """Stop the bot and start a new one on the same database (its chats kept, or fresh)."""
    await world.app.shutdown()
    telegram = world.telegram if same_telegram else FakeTelegram()
    world.app = await start_app(world.services, telegram)
    world.telegram = telegram
    return world.app, telegram


def at(world: World, seconds: float) -> None:
    moment = NOW + timedelta(seconds=seconds)
    world.services.clock = lambda: moment


async def outbox_rows(world: World) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        query = select(Reminder).where(col(Reminder.kind).in_(list(outbox.KINDS)))
        return list((await session.exec(query.order_by(col(Reminder.id)))).all())


def texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m["text"] for m in telegram.sent_to(chat_id)]


def sends(telegram: FakeTelegram) -> list[tuple[int, str]]:
    """The follow-ups sent (review cards and confirmations; reminders fall due too)."""
    return [
        (int(p["chat_id"]), p["text"])
        for n, p in telegram.calls
        if n == "sendMessage" and (p["text"].startswith("🔔") or CONFIRMATION in p["text"])
    ]


async def crash_after_commit(world: World) -> None:
    """From now on the process dies right after a commit, before anything is delivered."""

    async def die(ids: Any) -> None:
        raise Crash

    world.app.bot_data[OUTBOX_DELIVERY] = die


async def test_a_crash_right_after_submit_loses_neither_notice_nor_confirmation(
    world: World,
) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await crash_after_commit(world)
    with pytest.raises(Crash):
        await submit_customer(sales)
    [customer] = await customers(world.services.sessions)
    assert customer.status == "pending"  # the record was committed...
    assert cards(world, chen.id) == []  # ...but nothing followed it
    assert not [t for t in texts(world.telegram, sales.id) if CONFIRMATION in t]
    assert {(r.kind, r.status) for r in await outbox_rows(world)} == {
        ("review_card", "pending"),
        ("confirmation", "pending"),
    }

    _app, telegram = await restart(world)
    await scheduler.run_once(world.app)
    [card] = [t for t in texts(telegram, chen.id) if t.startswith("🔔")]
    assert customer.name in card and "138****5678" in card
    [confirmation] = [t for t in texts(telegram, sales.id) if CONFIRMATION in t]
    assert customer.customer_no in confirmation
    assert {(r.kind, r.status) for r in await outbox_rows(world)} == {
        ("review_card", "sent"),
        ("confirmation", "sent"),
    }
    # sent once: later polls, even much later, send nothing again
    before = len(sends(telegram))
    for seconds in (60, 3600, 86_400):
        at(world, seconds)
        await scheduler.run_once(world.app)
    assert sends(telegram)[before:] == []
    # the card was recorded, so Approve edits it in place
    [sent_card] = cards(world, chen.id)
    await world.person(chen.id, "Chen").press("通过", sent_card)
    [card_now] = cards(world, chen.id)
    assert "✅ 已由 Chen 审核通过" in card_now["text"]


async def test_sends_that_fail_after_submit_are_retried_after_a_restart(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    summary = await _summary(sales)
    world.telegram.fail_methods = {"sendMessage"}  # Telegram is unreachable at that moment
    await sales.press("提交", summary)
    [customer] = await customers(world.services.sessions)
    assert customer.status == "pending"
    rows = await outbox_rows(world)
    assert {(r.kind, r.status, r.attempts) for r in rows} == {
        ("review_card", "pending", 1),
        ("confirmation", "pending", 1),
    }
    assert all(r.last_error and "NetworkError" in r.last_error for r in rows)

    _app, telegram = await restart(world)
    await scheduler.run_once(world.app)  # too early: the back-off holds them
    assert sends(telegram) == []
    at(world, 31)
    await scheduler.run_once(world.app)
    assert len([t for t in texts(telegram, chen.id) if t.startswith("🔔")]) == 1
    assert len([t for t in texts(telegram, sales.id) if CONFIRMATION in t]) == 1
    at(world, 3600)
    await scheduler.run_once(world.app)
    assert len(sends(telegram)) == 2


async def test_a_crash_after_an_edit_or_a_resubmit_loses_no_notice(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    approved = await make_customer(world, sales, status="approved", email="old@example.cn")
    rejected = await make_customer(world, sales, status="rejected", name="第二家客户有限公司")
    await crash_after_commit(world)
    await sales.press_data(card(sales), f"ce:{approved}")
    await sales.press("邮箱")
    await sales.send("new@example.cn")
    with pytest.raises(Crash):
        await sales.press("提交")  # a change to an approved customer, for approval
    with pytest.raises(Crash):
        await sales.press_data(card(sales), f"rv:rs:{rejected}")  # a rejected one, again
    assert [(r.kind, r.status) for r in await outbox_rows(world)] == [
        ("review_card", "pending"),
        ("confirmation", "pending"),
        ("confirmation", "pending"),
        ("review_card", "pending"),
    ]

    _app, telegram = await restart(world)
    await scheduler.run_once(world.app)
    shown = texts(telegram, chen.id)
    assert len([t for t in shown if t.startswith("🔔 审核 · 客户资料变更")]) == 1
    assert len([t for t in shown if t.startswith("🔔 审核 · 新客户建档")]) == 1
    told = texts(telegram, sales.id)
    assert len([t for t in told if "修改已提交经理审批" in t]) == 1
    assert len([t for t in told if "已重新提交审核" in t]) == 1
    assert {r.status for r in await outbox_rows(world)} == {"sent"}


async def _summary(sales: Person) -> dict[str, Any]:
    """Walk /new to its summary card (submit_customer without the final press)."""
    await start_new_company(sales)
    await sales.send("13812345678")
    await sales.press("B 重要")
    await sales.press("黄苹果")
    await sales.press("拜访")
    await sales.press("继续填写")
    await sales.press("跳过其余")
    return sales.last_message()


# ---------------------------------------------------------------------------------------------
# the normal path: everything once, at once


async def test_nothing_is_sent_twice_in_the_normal_path(world: World) -> None:
    chen = await world.member("manager", "East", "Chen")
    zhou = await world.member("manager", "East", "Zhou")
    sales = await world.member("salesperson", "East", "Li")
    await submit_customer(sales)  # asserts the confirmation came within the press
    for manager in (chen, zhou):
        assert len(cards(world, manager.id)) == 1
    assert len([t for t in texts(world.telegram, sales.id) if CONFIRMATION in t]) == 1
    async with unit_of_work(world.services.sessions) as session:
        recorded = (await session.exec(select(ReviewNotice))).all()
    assert {n.chat_id for n in recorded} == {chen.id, zhou.id}
    before = len(sends(world.telegram))
    for seconds in (0, 200, 7200):  # past every lease and back-off
        at(world, seconds)
        await scheduler.run_once(world.app)
    assert sends(world.telegram)[before:] == []
    assert {r.status for r in await outbox_rows(world)} == {"sent"}
    assert all(r.payload is None for r in await outbox_rows(world))  # sealed text dropped


async def test_the_group_card_goes_through_the_outbox_and_is_edited_in_place(
    world: World,
) -> None:
    chen = await world.member("manager", "East", "Chen")
    sales = await world.member("salesperson", "East", "Li")
    await in_group(world, chen).send("/setgroup")
    await crash_after_commit(world)
    with pytest.raises(Crash):
        await submit_customer(sales)
    [row] = [r for r in await outbox_rows(world) if r.kind == "review_card"]
    assert (row.recipient_id, row.chat_id, row.status) == (None, GROUP_ID, "pending")

    await restart(world, same_telegram=True)
    await scheduler.run_once(world.app)
    [card] = cards(world, GROUP_ID)
    assert cards(world, chen.id) == []
    await in_group(world, chen).press("通过", card)
    [card] = cards(world, GROUP_ID)
    assert "✅ 已由 Chen 审核通过" in card["text"]


# ---------------------------------------------------------------------------------------------
# a value shown in clear


async def reveal_phone(world: World, sales: Person) -> dict[str, Any]:
    customer = await add_customer(
        world.services.sessions,
        world.services.keyring,
        sales.id,
        "杭州明远机械有限公司",
        phones=["+8613812345678"],
    )
    await sales.send("/help")
    await sales.press_data(sales.last_message(), f"cr:{customer.id}")
    await sales.press("电话")
    shown = sales.last_message()
    assert CLEAR_PHONE in shown["text"]
    return shown


async def test_a_revealed_value_is_deleted_even_after_a_restart(world: World) -> None:
    sales = await world.member()
    shown = await reveal_phone(world, sales)
    [row] = [r for r in await outbox_rows(world) if r.kind == "delete"]
    assert (row.chat_id, row.message_id, row.status) == (sales.id, shown["message_id"], "pending")
    assert row.due_at == NOW + timedelta(seconds=60)
    assert row.payload is None and "1381234" not in repr(row.model_dump())  # no clear value

    await restart(world, same_telegram=True)  # within the minute: the job queue's job is gone
    at(world, 30)
    await scheduler.run_once(world.app)
    assert CLEAR_PHONE in texts(world.telegram, sales.id)[-1]  # not yet
    # Telegram has trouble at the minute: tried again later, not given up
    world.telegram.fail_methods = {"deleteMessage"}
    at(world, 61)
    await scheduler.run_once(world.app)
    [row] = [r for r in await outbox_rows(world) if r.kind == "delete"]
    assert (row.status, row.attempts) == ("pending", 1)
    assert CLEAR_PHONE in texts(world.telegram, sales.id)[-1]
    world.telegram.fail_methods = set()
    at(world, 61 + 31)
    await scheduler.run_once(world.app)
    assert not [t for t in texts(world.telegram, sales.id) if CLEAR_PHONE in t]
    deleted = [p for n, p in world.telegram.calls if n == "deleteMessage"]
    assert deleted[-1] == {"chat_id": sales.id, "message_id": shown["message_id"]}
    [row] = [r for r in await outbox_rows(world) if r.kind == "delete"]
    assert row.status == "sent"
    at(world, 3600)
    await scheduler.run_once(world.app)
    assert len([p for n, p in world.telegram.calls if n == "deleteMessage"]) == len(deleted)


async def test_a_reveal_whose_message_never_went_out_leaves_nothing_to_delete(
    world: World,
) -> None:
    sales = await world.member()
    await reveal_phone(world, sales)  # a first reveal, deleted in time
    world.telegram.fail_methods = {"sendMessage"}
    await sales.press("电话", sales.telegram.sent_to(sales.id)[-2])  # the menu again
    world.telegram.fail_methods = set()
    rows = [r for r in await outbox_rows(world) if r.kind == "delete"]
    assert [r.status for r in rows] == ["pending", "cancelled"]
    at(world, 61)
    await scheduler.run_once(world.app)
    assert [r.status for r in await outbox_rows(world) if r.kind == "delete"] == [
        "sent",
        "cancelled",
    ]


@pytest.mark.parametrize("value", ["0", "4", "3601", "soon"])
def test_a_bad_outbox_lease_stops_the_bot_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    value: str,
) -> None:
    clean_settings_env(monkeypatch, tmp_path, DATA_DIR=str(tmp_path / "data"))
    monkeypatch.setenv("OUTBOX_LEASE_SECONDS", value)
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    assert stopped.value.code == 2
    [line] = [x for x in capsys.readouterr().err.splitlines() if "OUTBOX_LEASE_SECONDS" in x]
    assert line.startswith("The bot cannot start: OUTBOX_LEASE_SECONDS: ")
    assert "5 to 3600" in line or "integer" in line
