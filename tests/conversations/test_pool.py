"""The team pool (公海, issue 10 item 4), through the bot: a customer nobody follows up is
released to its team's pool after a warning to its owner, leaves its owner, and is claimed by a
salesperson of the team (exactly one of two at once) or assigned by a manager.

The clock starts at NOW (2026-11-22 10:00 in Shanghai); the scheduler runs as the bot runs it
(`scheduler.run_once`), with the clock moved on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot import scheduler
from bot.context import Services
from bot.settings import Settings
from storage.db import unit_of_work
from storage.models import Customer, Reminder, Transfer
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import TOKEN, FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import audit_actions
from tests.auxil.record_helpers import audit_entries, card, customer_row, history_of
from tests.auxil.world import ADMIN_ID, NOW, World, start_app

POOL_ON = "A=30,B=45,C=60,D=90"
TODAY = date(2026, 11, 22)
WARNED = "将于"  # the warning: "... will go to the team pool on <date> ..."
RELEASED = "已进入团队公海"
TAKEN = "抢先"
GONE = "已不在您可查看的公海中"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The pool on with the product's default limits; no audit-head notice to count."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        POOL_AFTER_DAYS=POOL_ON,
        AUDIT_HEAD_DAYS=0,
    )


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    """The conftest world, kept here so a test may restart the bot on the same database."""
    telegram = FakeTelegram()
    app = await start_app(services, telegram)
    world = World(app, telegram, services, itertools.count(700_001))
    try:
        yield world
    finally:
        await world.app.shutdown()
    refused = [(r.method, r.description) for r in world.telegram.refused]
    assert not refused, refused


def at(world: World, days: float) -> None:
    moment = NOW + timedelta(days=days)
    world.services.clock = lambda: moment


async def tick(world: World) -> scheduler.Tick:
    return await scheduler.run_once(world.app)


async def overdue_customer(
    world: World,
    owner: Person,
    name: str = "明远机械",
    *,
    customer_class: str = "A",
    followup: date | None,
    **columns: Any,
) -> int:
    """An approved customer of `owner` whose follow-up was due on `followup`."""
    customer = await add_customer(
        world.services.sessions,
        world.services.keyring,
        owner,
        name,
        customer_class=customer_class,
        phones=["13812345678"],
    )
    assert customer.id is not None
    await set_columns(
        world.services.sessions,
        customer.id,
        status="approved",
        approved_at=NOW - timedelta(days=200),
        next_followup_on=followup,
        **columns,
    )
    return customer.id


def released_in(days: int, customer_class: str = "A") -> date:
    """The follow-up date that makes a customer of that class due for release in `days`."""
    limit = {"A": 30, "B": 45, "C": 60, "D": 90}[customer_class]
    return TODAY + timedelta(days=days) - timedelta(days=limit + 1)


def texts(world: World, person: Person) -> list[str]:
    return [m.get("text", "") for m in world.telegram.sent_to(person.id)]


async def released(world: World, customer_id: int) -> bool:
    return (await customer_row(world.services.sessions, customer_id)).pooled_at is not None


async def released_pool(world: World, owner: Person, **values: Any) -> int:
    """A customer already in the pool: warned today, released three days later (clock moved)."""
    customer_id = await overdue_customer(world, owner, followup=released_in(0), **values)
    await tick(world)
    at(world, 3)
    await tick(world)
    assert await released(world, customer_id)
    return customer_id


async def east(world: World) -> tuple[Person, Person, Person]:
    """Li owns the customers, Wang is his teammate, Chen their manager."""
    li = await world.member("salesperson", "East", "Li")
    wang = await world.member("salesperson", "East", "Wang")
    chen = await world.member("manager", "East", "Chen")
    return li, wang, chen


# ---------------------------------------------------------------------------------------------
# release


async def test_the_owner_is_warned_three_days_before_and_the_customer_goes_after_the_limit(
    world: World,
) -> None:
    li, _wang, chen = await east(world)
    customer_id = await overdue_customer(world, li, followup=released_in(3))
    await tick(world)
    [warning] = [t for t in texts(world, li) if WARNED in t]
    assert "明远机械" in warning and "2026-11-25" in warning and "公海" in warning
    assert "逾期 28 天" in warning  # 2026-10-25 → 2026-11-22
    assert "拜访" in warning  # how to keep it: log a visit or set a new date
    # the warning offers to log a visit
    warning_message = next(m for m in world.telegram.sent_to(li.id) if WARNED in m.get("text", ""))
    assert any(data.startswith("cv:") for _, data in buttons(warning_message))

    at(world, 2)
    await tick(world)
    assert not await released(world, customer_id)
    assert len([t for t in texts(world, li) if WARNED in t]) == 1  # warned once

    at(world, 3)
    result = await tick(world)
    assert result.released == 1
    row = await customer_row(world.services.sessions, customer_id)
    assert row.pooled_at == NOW + timedelta(days=3)
    assert row.owner_id == (await staff_of(world.services.sessions, li)).id  # the last owner
    [told] = [t for t in texts(world, li) if RELEASED in t]
    assert "明远机械" in told and "逾期 31 天" in told

    # it left Li: not in /my, its card refused even by its old button
    await li.send("/my")
    assert "明远机械" not in li.last_text()
    await li.press_data(card(li), f"cu:{customer_id}")
    assert "找不到" in (li.last_answer() or "")
    # the manager still sees it as the team's
    await chen.send("/my")
    assert any("明远机械" in label for label, _ in buttons(chen.last_message()))
    await chen.press_data(card(chen), f"cu:{customer_id}")
    assert "2026-11-25 起在团队公海" in chen.last_text()


async def test_a_visit_logged_in_time_keeps_the_customer(world: World) -> None:
    li, _wang, _chen = await east(world)
    customer_id = await overdue_customer(world, li, followup=released_in(3))
    await tick(world)
    assert [t for t in texts(world, li) if WARNED in t]
    at(world, 1)
    await li.send("/visit")
    await li.press("明远")
    await li.press("电话")
    await li.press("跳过其余")
    await li.press("提交")
    row = await customer_row(world.services.sessions, customer_id)
    assert row.last_visit_on == TODAY + timedelta(days=1)
    for days in (3, 4, 10, 30):
        at(world, days)
        await tick(world)
        assert not await released(world, customer_id), days
    assert not [t for t in texts(world, li) if RELEASED in t]


async def test_each_class_has_its_own_limit(world: World) -> None:
    """Due the same day, an A customer goes after 30 days overdue, a D one after 90."""
    li, _wang, _chen = await east(world)
    due = date(2026, 10, 1)
    strategic = await overdue_customer(world, li, "明远 A", customer_class="A", followup=due)
    potential = await overdue_customer(world, li, "明远 D", customer_class="D", followup=due)
    await tick(world)  # A is past its limit already: warned now (late), released in 3 days
    at(world, 3)
    await tick(world)
    assert await released(world, strategic)
    assert not await released(world, potential)
    # D: release day 2026-12-31, warned on 2026-12-28
    at(world, (date(2026, 12, 27) - TODAY).days)
    await tick(world)
    assert not [t for t in texts(world, li) if "明远 D" in t and WARNED in t]
    at(world, (date(2026, 12, 28) - TODAY).days)
    await tick(world)
    assert [t for t in texts(world, li) if "明远 D" in t and WARNED in t]
    at(world, (date(2026, 12, 30) - TODAY).days)
    await tick(world)
    assert not await released(world, potential)
    at(world, (date(2026, 12, 31) - TODAY).days)
    await tick(world)
    assert await released(world, potential)


async def test_off_and_a_class_left_out_never_release(world: World, tmp_path: Path) -> None:
    li, _wang, _chen = await east(world)
    long_ago = date(2025, 1, 1)
    strategic = await overdue_customer(world, li, "明远 A", customer_class="A", followup=long_ago)
    ordinary = await overdue_customer(world, li, "明远 C", customer_class="C", followup=long_ago)
    base = world.services.settings
    world.services.settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        POOL_AFTER_DAYS="off",
        AUDIT_HEAD_DAYS=0,
    )
    for days in (0, 3, 10, 400):
        at(world, days)
        await tick(world)
    assert not await released(world, strategic) and not await released(world, ordinary)
    assert not [t for t in texts(world, li) if WARNED in t or RELEASED in t]

    world.services.settings = base.model_copy(update={"POOL_AFTER_DAYS": "A=30"})
    world.services.settings.__dict__.pop("pool_after_days", None)
    at(world, 401)
    await tick(world)
    at(world, 404)
    await tick(world)
    assert await released(world, strategic)
    assert not await released(world, ordinary)  # class C is left out: never pooled


async def test_a_customer_without_a_follow_up_date_counts_from_its_approval(
    world: World,
) -> None:
    """Never visited and no date set: its first follow-up is one class cycle after approval."""
    li, _wang, _chen = await east(world)
    customer_id = await overdue_customer(world, li, followup=None)  # approved 200 days ago
    await tick(world)
    assert [t for t in texts(world, li) if WARNED in t]
    at(world, 3)
    await tick(world)
    assert await released(world, customer_id)


async def test_the_release_is_in_history_and_audit_once_however_often_it_runs(
    world: World,
) -> None:
    li, _wang, _chen = await east(world)
    customer_id = await released_pool(world, li)
    for _ in range(3):  # the same poll again, and a second instance's poll
        await tick(world)
    at(world, 3.5)
    await tick(world)
    history = [(r.action, diff) for r, diff in await history_of(world, customer_id)]
    assert history.count((Transfer.pool_release, {"owner": ["Li", None]})) == 1
    [entry] = await audit_entries(world.services.sessions, "customer.pool_release")
    assert entry.entity_id == customer_id and entry.actor_staff_id is None
    detail = json.loads(entry.detail or "{}")
    assert set(detail) == {"from", "overdue_days", "release_on"}  # no personal data
    assert detail["overdue_days"] == 34  # warned on its release day, released 3 days on
    assert len([t for t in texts(world, li) if RELEASED in t]) == 1
    # what was pending about it for Li is cancelled, nothing is pending for him any more
    async with unit_of_work(world.services.sessions) as session:
        pending = (
            await session.exec(
                select(Reminder).where(
                    Reminder.subject_id == customer_id, col(Reminder.status) == "pending"
                )
            )
        ).all()
    assert pending == []


# ---------------------------------------------------------------------------------------------
# /pool, claims


def pool_buttons(person: Person) -> list[tuple[str, str]]:
    return buttons(person.last_message())


async def test_a_teammate_claims_it_with_a_confirmation_and_its_card_opens(world: World) -> None:
    li, wang, _chen = await east(world)
    customer_id = await released_pool(world, li)
    await wang.send("/pool")
    listing = wang.last_text()
    assert "团队公海 · East" in listing and "明远机械" in listing
    assert "A 战略客户" in listing and "已在公海 0 天" in listing
    assert "138" not in listing  # no sensitive column, masked or not
    assert not any(data.startswith("cu:") for _, data in pool_buttons(wang))  # no card yet
    await wang.press("领取 1.")
    assert "确认领取" in wang.last_text()
    assert await released(world, customer_id)  # the confirmation step claims nothing yet
    await wang.press("确认领取")
    row = await customer_row(world.services.sessions, customer_id)
    wang_staff = await staff_of(world.services.sessions, wang)
    assert (row.owner_id, row.pooled_at) == (wang_staff.id, None)
    assert row.claimed_at == NOW + timedelta(days=3)
    assert row.next_followup_on == TODAY + timedelta(days=3)  # due the day it is claimed
    assert "138****5678" in wang.last_text()  # the card opened, masked as cards are
    history = [(r.action, diff) for r, diff in await history_of(world, customer_id)]
    assert (Transfer.pool_claim, {"owner": ["Li", "Wang"]}) in history
    assert (
        Transfer.pool_claim,
        {"next_followup_on": [released_in(0).isoformat(), "2026-11-25"]},
    ) in history
    [entry] = await audit_entries(world.services.sessions, "customer.pool_claim")
    assert entry.actor_staff_id == wang_staff.id and entry.entity_id == customer_id
    # Wang's /my has it; the pool is empty
    await wang.send("/my")
    assert any("明远机械" in label for label, _ in pool_buttons(wang))
    await wang.send("/pool")
    assert "公海里没有客户" in wang.last_text()


async def test_two_salespeople_claim_the_same_customer_at_once_and_one_wins(
    world: World,
) -> None:
    li, wang, _chen = await east(world)
    zhou = await world.member("salesperson", "East", "Zhou")
    customer_id = await released_pool(world, li)
    await wang.send("/pool")
    await zhou.send("/pool")
    confirm = f"pl:C:{customer_id}"
    before = len(world.telegram.answers())
    await asyncio.gather(
        wang.press_data(wang.last_message(), confirm),
        zhou.press_data(zhou.last_message(), confirm),
    )
    row = await customer_row(world.services.sessions, customer_id)
    owners = {(await staff_of(world.services.sessions, p)).id: p for p in (wang, zhou)}
    assert row.owner_id in owners and row.pooled_at is None
    loser = zhou if owners[row.owner_id] is wang else wang
    answers = [a.get("text") or "" for a in world.telegram.answers()[before:]]
    assert len([a for a in answers if TAKEN in a]) == 1
    assert "公海里没有客户" in loser.last_text()  # the loser's list is shown anew
    assert len(await audit_entries(world.services.sessions, "customer.pool_claim")) == 1
    claims = [r for r, _ in await history_of(world, customer_id) if r.action == "pool_claim"]
    assert len(claims) == 2  # the winner's owner line and its follow-up date, no more


async def test_the_claim_limit_refuses_the_eleventh(world: World) -> None:
    li, wang, _chen = await east(world)
    ids = [
        await overdue_customer(world, li, f"明远 {n:02d}", followup=released_in(0))
        for n in range(11)
    ]
    await tick(world)
    at(world, 3)
    await tick(world)
    await wang.send("/pool")
    assert "11 个客户" in wang.last_text()
    assert "最多领取 10 个(您已领取 0 个)" in wang.last_text()
    for customer_id in ids[:10]:
        await wang.press_data(wang.last_message(), f"pl:C:{customer_id}")
    before = len(world.telegram.answers())
    await wang.press_data(wang.last_message(), f"pl:C:{ids[10]}")
    [answer] = world.telegram.answers()[before:]
    assert "已达上限" in answer["text"] and "30 天" in answer["text"]
    assert await released(world, ids[10])
    # claims older than the window no longer count
    at(world, 34)
    await wang.press_data(wang.last_message(), f"pl:C:{ids[10]}")
    assert not await released(world, ids[10])


async def test_forged_pool_buttons_from_another_team_are_refused(world: World) -> None:
    li, _wang, _chen = await east(world)
    zhao = await world.member("salesperson", "West", "Zhao")
    west_manager = await world.member("manager", "West", "Qian")
    customer_id = await released_pool(world, li)
    wang_id = (await staff_of(world.services.sessions, _wang)).id
    east_team = (await customer_row(world.services.sessions, customer_id)).team_id
    for person, data in (
        (zhao, f"pl:c:{customer_id}"),
        (zhao, f"pl:C:{customer_id}"),
        (west_manager, f"pl:a:{customer_id}:0"),
        (west_manager, f"pl:p:{customer_id}:{wang_id}"),
        (west_manager, f"pl:A:{customer_id}:{wang_id}"),
        (_wang, f"pl:A:{customer_id}:{wang_id}"),  # a salesperson of the team may not assign
        (_wang, f"pl:a:{customer_id}:0"),
    ):
        before = len(world.telegram.answers())
        await person.press_data(card(person), data)
        [answer] = world.telegram.answers()[before:]
        assert GONE in answer["text"] or "找不到" in answer["text"], (data, answer)
        assert await released(world, customer_id), data
    before = len(world.telegram.answers())
    await zhao.press_data(card(zhao), f"pl:t:{east_team}:0")
    assert "找不到" in world.telegram.answers()[before]["text"]
    for data in ("pl:C:abc", "pl:C:", "pl:x:1", f"pl:C:{customer_id}:9", "pl:t:1"):
        before = len(world.telegram.answers())
        await zhao.press_data(card(zhao), data)
        assert "过期" in world.telegram.answers()[before]["text"], data
    # and Zhao's own /pool is the West pool, empty
    await zhao.send("/pool")
    assert "West" in zhao.last_text() and "明远机械" not in zhao.last_text()


async def test_a_manager_assigns_from_the_pool_and_the_assignee_is_told(world: World) -> None:
    li, wang, chen = await east(world)
    customer_id = await released_pool(world, li)
    await chen.send("/pool")
    assert not [label for label, _ in pool_buttons(chen) if "领取" in label]
    await chen.press("分配 1.")
    people = [label for label, _ in pool_buttons(chen)]
    assert "Li" in people and "Wang" in people and "Chen" not in people  # salespeople only
    await chen.press("Wang")
    assert "确认将 明远机械" in chen.last_text() and "Wang" in chen.last_text()
    await chen.press("确认分配")
    assert "已分配给 Wang" in chen.last_text()
    row = await customer_row(world.services.sessions, customer_id)
    wang_staff = await staff_of(world.services.sessions, wang)
    assert (row.owner_id, row.pooled_at, row.claimed_at) == (wang_staff.id, None, None)
    [told] = [t for t in texts(world, wang) if "分配给您" in t]
    assert "Chen" in told and "明远机械" in told
    history = [(r.action, diff) for r, diff in await history_of(world, customer_id)]
    assert (Transfer.pool_assign, {"owner": ["Li", "Wang"]}) in history
    [entry] = await audit_entries(world.services.sessions, "customer.pool_assign")
    assert entry.actor_staff_id == (await staff_of(world.services.sessions, chen)).id
    # a second press of the old confirmation is told it is taken
    before = len(world.telegram.answers())
    await chen.press_data(card(chen), f"pl:A:{customer_id}:{wang_staff.id}")
    assert TAKEN in world.telegram.answers()[before]["text"]


async def test_an_admin_chooses_the_team_first(world: World) -> None:
    li, _wang, _chen = await east(world)
    await world.member("salesperson", "West", "Zhao")
    await released_pool(world, li)
    admin = world.admin()
    await admin.send("/pool")
    assert "请选择团队" in admin.last_text()
    labels = [label for label, _ in pool_buttons(admin)]
    assert "East(1)" in labels and "West(0)" in labels
    await admin.press("East")
    assert "明远机械" in admin.last_text()
    assert any("分配 1." in label for label, _ in pool_buttons(admin))
    await admin.press("团队列表")
    assert "请选择团队" in admin.last_text()


async def test_a_restart_between_release_and_claim_loses_nothing(world: World) -> None:
    li, wang, _chen = await east(world)
    customer_id = await released_pool(world, li)
    await wang.send("/pool")
    old_list = wang.last_message()
    await world.app.shutdown()  # a new process on the same database (and the same chats)
    world.app = await start_app(world.services, world.telegram)
    wang = world.person(wang.id, "Wang")
    await wang.press_data(old_list, f"pl:c:{customer_id}")  # a button from before the restart
    await wang.press("确认领取")
    row = await customer_row(world.services.sessions, customer_id)
    assert row.owner_id == (await staff_of(world.services.sessions, wang)).id
    await tick(world)  # nothing released again, nothing sent twice
    assert (await audit_actions(world.services.sessions)).count("customer.pool_release") == 1
    assert len([t for t in texts(world, li) if RELEASED in t]) == 1


async def test_names_of_the_longest_length_fit_the_pool_list_and_the_notices(
    world: World,
) -> None:
    long_name = "杭" * 200
    li = await world.member("salesperson", "East", "李" * 200)
    wang = await world.member("salesperson", "East", "王" * 200)
    chen = await world.member("manager", "East", "陈" * 200)
    for n in range(12):
        await overdue_customer(
            world,
            li,
            f"{n:02d}{long_name}"[:200],
            followup=released_in(0),
            industry="机" * 100,
            region="浙" * 100,
        )
    await tick(world)
    assert [t for t in texts(world, li) if WARNED in t]
    at(world, 3)
    assert (await tick(world)).released == 12
    assert [t for t in texts(world, li) if RELEASED in t]
    await wang.send("/pool")
    assert "第 1/2 页" in wang.last_text()
    await wang.press("›")
    assert "第 2/2 页" in wang.last_text()
    await wang.press("领取")
    await wang.press("确认领取")
    await chen.send("/pool")
    await chen.press("分配 1.")
    await chen.press("王")
    await chen.press("确认分配")
    assert [t for t in texts(world, wang) if "分配给您" in t]
    # the fake Telegram refused nothing (the fixture checks), every text within the limit
    for _method, params in world.telegram.calls:
        assert len(str(params.get("text", ""))) <= 4096


async def test_the_released_owner_no_longer_finds_it(world: World) -> None:
    li, _wang, _chen = await east(world)
    customer_id = await released_pool(world, li)
    await li.send("/find")
    await li.send("明远")
    assert not any(data == f"cu:{customer_id}" for _, data in buttons(li.last_message()))
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None and customer.pooled_at is not None


async def test_a_late_warning_waits_for_the_end_of_the_quiet_hours(world: World) -> None:
    """Long overdue when the pool is switched on at 23:00: the warning goes out at 08:00 (the
    owner's quiet hours, 21-8), and the release comes three days after it was due."""
    li, _wang, _chen = await east(world)
    customer_id = await overdue_customer(world, li, followup=date(2026, 9, 1))
    late_evening = 13 / 24 + 1  # 2026-11-23 15:00 UTC: 23:00 in Shanghai
    at(world, late_evening)
    await tick(world)
    assert not [t for t in texts(world, li) if WARNED in t]
    at(world, late_evening + 9 / 24)  # 08:00 in Shanghai
    await tick(world)
    [warning] = [t for t in texts(world, li) if WARNED in t]
    assert "2026-11-26" in warning  # three days after 23:00 on the 23rd, in Shanghai
    at(world, late_evening + 3 - 1 / 24)
    await tick(world)
    assert not await released(world, customer_id)
    at(world, late_evening + 3)
    await tick(world)
    assert await released(world, customer_id)
