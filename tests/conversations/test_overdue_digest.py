"""The managers' overdue digest through the bot's surface (issue 14): a follow-up overdue by
OVERDUE_ESCALATION_DAYS reaches each manager of the team in ONE message a day (one outbox row
per manager and day), its customers read at delivery: names whole, a button each to open the
card, what does not fit counted with where to see it; followed up, archived, destroyed or
moved customers are not listed, none left sends nothing; two pollers plan one row; a
deactivated manager gets nothing; a stale or forged press is refused."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlmodel import col, func, select

from bot.i18n import translate
from storage.db import unit_of_work
from storage.models import Reminder, Staff
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as base
from tests.conversations.test_catch_up import plan
from tests.conversations.test_reminders import (
    BERLIN,
    SHANGHAI,
    Clock,
    add_customer,
    change_customer,
    labels,
    member,
    rows,
    tick,
    utc,
)

# the reminder tests' fixtures: their settings, clock and faked pacing
settings, clock, services, pacing = base.settings, base.clock, base.services, base.pacing
fake_pacing, fresh_numbers = base.fake_pacing, base.fresh_numbers

TELEGRAM_TEXT = 4096  # UTF-16 units a message may hold
TELEGRAM_DATA = 64  # bytes of a button's data
DUE = date(2026, 11, 20)  # the follow-ups' day: three days overdue on the 23rd
PLANNED = utc(2026, 11, 22, 2, 0)  # the day before: the digest row is planned (tomorrow's)
NINE = {SHANGHAI: utc(2026, 11, 23, 1, 0), BERLIN: utc(2026, 11, 23, 8, 0)}  # 09:00 on the 23rd


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def digests(world: World, who: base.Member, language: str) -> list[dict]:
    title = translate(language, "overdue_digest.header", days=3, on="", count=0)[:8]
    return [m for m in world.telegram.sent_to(who.person.id) if title in m.get("text", "")]


async def overdue_rows(world: World) -> list[Reminder]:
    return await rows(world, kind=Kind.overdue)


@pytest.mark.parametrize(("language", "zone"), [("zh", SHANGHAI), ("en", BERLIN)])
async def test_three_overdue_customers_reach_the_manager_in_one_message_a_button_each(
    world: World, clock: Clock, language: str, zone: str
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=zone, language=language, name="Zhou")
    names = ["甲公司", "Hudson Tools", "乙公司"]
    ids = [await add_customer(world, owner, n, next_followup_on=DUE) for n in names]
    clock.set(PLANNED)
    await tick(world)
    assert digests(world, manager, language) == []  # not yet overdue by three days
    clock.set(NINE[zone])
    await tick(world)
    [digest] = world.telegram.sent_to(manager.person.id)
    text = digest["text"]
    header = translate(language, "overdue_digest.header", days=3, on="2026-11-20", count=3)
    assert text.startswith(header)
    for number, (name, customer_id) in enumerate(zip(names, ids, strict=True), start=1):
        line = translate(
            language,
            "overdue_digest.line",
            customer=name,
            number=f"KH-2026-{customer_id:06d}",
            owner="Wang",
        ).removeprefix("• ")
        assert f"{number}. {line}" in text
    assert [d for _, d in buttons(digest)] == [f"cu:{i}" for i in ids]
    opener = translate(language, "reminders.act.open")
    assert labels(digest)[1] == translate(
        language, "reminders.act.item", n=2, act=opener, name="Hudson Tools"
    )
    [row] = await overdue_rows(world)
    assert (row.subject_type, row.subject_id, row.recipient_id) == (
        "staff",
        manager.staff_id,
        manager.staff_id,
    )
    assert row.period_on == date(2026, 11, 23)
    # the button opens the customer's card
    reply = await manager.person.press_data(digest, f"cu:{ids[1]}")
    assert any("Hudson Tools" in m.get("text", "") for m in reply)
    # later polls send nothing again
    clock.advance(hours=2)
    await tick(world)
    assert len(world.telegram.sent_to(manager.person.id)) == 1 + len(reply)


@pytest.mark.parametrize(
    ("language", "filler"), [("zh", "鄂尔多斯煤炭"), ("en", "Baotou Rare Earth Trading ")]
)
async def test_many_overdue_customers_of_the_longest_names_fit_one_message_the_rest_counted(
    world: World, clock: Clock, language: str, filler: str
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="王" * 100)
    manager = await member(world, "manager", timezone=SHANGHAI, language=language)
    names = [(filler * 200)[:196] + f" {n:03d}" for n in range(40)]
    for name in names:
        await add_customer(world, owner, name, next_followup_on=DUE)
    clock.set(PLANNED)
    await tick(world)
    clock.set(NINE[SHANGHAI])
    await tick(world)
    [digest] = world.telegram.sent_to(manager.person.id)
    assert units(digest["text"]) <= TELEGRAM_TEXT
    assert all(len(d.encode()) <= TELEGRAM_DATA for _, d in buttons(digest))
    listed = [line for line in digest["text"].splitlines() if line[:1].isdigit()]
    assert 1 <= len(listed) == len(buttons(digest))
    shown = [n for n in names if n in digest["text"]]
    assert len(shown) == len(listed)  # names whole, never cut
    more = translate(language, "overdue_digest.more", count=40 - len(listed))
    assert more in digest["text"] and "/my" in more
    assert len(await overdue_rows(world)) == 1


async def test_customers_handled_between_planning_and_sending_are_not_listed(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    kept = await add_customer(world, owner, "还逾期公司", next_followup_on=DUE)
    visited = await add_customer(world, owner, "已拜访公司", next_followup_on=DUE)
    moved = await add_customer(world, owner, "改期公司", next_followup_on=DUE)
    archived = await add_customer(world, owner, "归档公司", next_followup_on=DUE)
    pooled = await add_customer(world, owner, "公海公司", next_followup_on=DUE)
    clock.set(PLANNED)
    await tick(world)
    assert len(await overdue_rows(world)) == 1
    await change_customer(world, visited, last_visit_on=date(2026, 11, 22))
    await change_customer(world, moved, next_followup_on=date(2026, 12, 1))
    await change_customer(world, archived, status="archived")
    await change_customer(world, pooled, pooled_at=clock())
    clock.set(NINE[SHANGHAI])
    await tick(world)
    [digest] = world.telegram.sent_to(manager.person.id)
    assert "共 1 位客户" in digest["text"] and "还逾期公司" in digest["text"]
    for gone in ("已拜访公司", "改期公司", "归档公司", "公海公司"):
        assert gone not in digest["text"]
    assert [d for _, d in buttons(digest)] == [f"cu:{kept}"]


async def test_a_manager_with_none_left_gets_nothing(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    first = await add_customer(world, owner, "甲公司", next_followup_on=DUE)
    second = await add_customer(world, owner, "乙公司", next_followup_on=DUE)
    clock.set(PLANNED)
    await tick(world)
    await change_customer(world, first, last_visit_on=date(2026, 11, 22))
    await change_customer(world, second, status="destroyed")
    clock.set(NINE[SHANGHAI])
    await tick(world)
    assert world.telegram.sent_to(manager.person.id) == []
    [row] = await overdue_rows(world)
    assert row.status != "pending"  # settled, not retried
    clock.advance(days=1)
    await tick(world)
    assert world.telegram.sent_to(manager.person.id) == []


async def test_two_pollers_at_once_plan_one_digest_row_per_manager_and_day(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    for index in range(12):
        await add_customer(world, owner, f"并发{index}", next_followup_on=DUE)
    clock.set(PLANNED)
    await asyncio.gather(*(plan(world, clock) for _ in range(3)))
    async with unit_of_work(world.services.sessions) as session:
        keys = (
            await session.exec(
                select(Reminder.dedup_key, func.count())
                .where(col(Reminder.kind) == Kind.overdue)
                .group_by(Reminder.dedup_key)
            )
        ).all()
    assert len(keys) == 1 and keys[0][1] == 1
    again = await plan(world, clock)
    assert again.get("overdue", 0) == 0


async def test_two_managers_each_get_their_own_and_a_deactivated_one_nothing(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    zhou = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    weber = await member(world, "manager", timezone=BERLIN, language="en", name="Weber")
    gone = await member(world, "manager", timezone=SHANGHAI, name="Sun")
    west = await member(world, "manager", team="West", timezone=SHANGHAI, name="Qian")
    await add_customer(world, owner, "甲公司", next_followup_on=DUE)
    await add_customer(world, owner, "乙公司", next_followup_on=DUE)
    clock.set(PLANNED)
    await tick(world)
    escalated = await overdue_rows(world)
    assert sorted(r.recipient_id for r in escalated) == sorted(
        m.staff_id for m in (zhou, weber, gone)
    )
    async with unit_of_work(world.services.sessions) as session:  # deactivated since
        staff = await session.get(Staff, gone.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    clock.set(NINE[BERLIN])  # both hours passed
    await tick(world)
    [mine] = digests(world, zhou, "zh")
    [theirs] = digests(world, weber, "en")
    for digest in (mine, theirs):
        assert "甲公司" in digest["text"] and "乙公司" in digest["text"]
        assert len(buttons(digest)) == 2
    assert world.telegram.sent_to(gone.person.id) == []
    assert world.telegram.sent_to(west.person.id) == []


async def test_a_stale_or_forged_press_is_refused(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    west = await member(world, "manager", team="West", timezone=SHANGHAI, name="Qian")
    west_owner = await member(world, team="West", timezone=SHANGHAI, name="Li")
    customer = await add_customer(world, owner, "甲公司", next_followup_on=DUE)
    await add_customer(world, west_owner, "西部公司", next_followup_on=DUE)
    clock.set(PLANNED)
    await tick(world)
    clock.set(NINE[SHANGHAI])
    await tick(world)
    [digest] = digests(world, manager, "zh")
    [west_digest] = digests(world, west, "zh")
    assert "甲公司" not in west_digest["text"]
    # forged: the West manager presses East's customer on their own digest
    await west.person.press_data(west_digest, f"cu:{customer}")
    refused = translate("zh", "refused.not_found")
    answered = west.person.last_answer() == refused
    assert answered or refused in world.telegram.sent_to(west.person.id)[-1].get("text", "")
    assert not any("甲公司" in m.get("text", "") for m in world.telegram.sent_to(west.person.id))
    # forged garbage on the digest: expired, nothing sent
    before = len(world.telegram.sent_to(manager.person.id))
    await manager.person.press_data(digest, "cu:x")
    assert len(world.telegram.sent_to(manager.person.id)) == before
    # stale: the manager, deactivated since, opens nothing
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, manager.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    await manager.person.press_data(digest, f"cu:{customer}")
    after = world.telegram.sent_to(manager.person.id)[before:]
    assert not any("甲公司" in m.get("text", "") for m in after)


async def test_a_per_customer_escalation_pending_at_the_upgrade_is_sent_as_a_digest_of_one(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    customer = await add_customer(world, owner, "旧行公司", next_followup_on=DUE)
    await add_customer(world, owner, "别的公司", next_followup_on=DUE)
    clock.set(NINE[SHANGHAI])
    async with unit_of_work(world.services.sessions) as session:  # as the old planner wrote it
        session.add(
            Reminder(
                dedup_key=f"overdue:customer:{customer}:{manager.staff_id}:{DUE.isoformat()}",
                kind=Kind.overdue,
                subject_type="customer",
                subject_id=customer,
                recipient_id=manager.staff_id,
                due_at=clock(),
                next_attempt_at=clock(),
                period_on=DUE,
                created_at=clock(),
                updated_at=clock(),
            )
        )
    await tick(world)
    sent = world.telegram.sent_to(manager.person.id)
    old = [m for m in sent if "共 1 位客户" in m["text"]]
    assert len(old) == 1 and "旧行公司" in old[0]["text"] and "别的公司" not in old[0]["text"]
    assert [d for _, d in buttons(old[0])] == [f"cu:{customer}"]
