"""Snooze "1 day" is tomorrow at the follow-up hour, in the person's zone, and it moves the
customer's own follow-up date (issue 13): at 23:50 and 00:10 local time, across a month end;
/my no longer calls it overdue; the change is audited and in the customer's history."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import col, select

from storage.db import unit_of_work
from storage.models import AuditEntry, ChangeRecord
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    BERLIN,
    SHANGHAI,
    Clock,
    Member,
    add_customer,
    customer_row,
    last_of,
    member,
    rows,
    texts,
    tick,
    utc,
)

settings, services, clock, pacing = (
    reminders.settings,
    reminders.services,
    reminders.clock,
    reminders.pacing,
)
fake_pacing, fresh_numbers = reminders.fake_pacing, reminders.fresh_numbers


async def due_follow_up(
    world: World, clock: Clock, owner: Member, on: date, sent_at: datetime
) -> int:
    customer = await add_customer(world, owner, "推迟公司", next_followup_on=on)
    clock.set(sent_at)
    await tick(world)
    assert texts(world, owner), "the follow-up reminder arrives"
    return customer


async def history_lines(world: World, customer_id: int) -> int:
    async with unit_of_work(world.services.sessions) as session:
        return len(
            (
                await session.exec(
                    select(ChangeRecord).where(col(ChangeRecord.customer_id) == customer_id)
                )
            ).all()
        )


async def test_snooze_at_ten_to_midnight_is_tomorrow_morning_not_24_hours_on(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await due_follow_up(world, clock, owner, date(2026, 11, 21), utc(2026, 11, 21, 1))
    before = await history_lines(world, customer)
    clock.set(utc(2026, 11, 21, 15, 50))  # 23:50 in Shanghai
    await owner.person.press("明天再提醒")
    assert owner.person.last_answer() == (
        "⏰ 已推迟：跟进日期改为 2026-11-22，2026-11-22 09:00 再提醒你"
    )
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 22)
    assert await history_lines(world, customer) == before + 1
    async with unit_of_work(world.services.sessions) as session:
        actions = (
            await session.exec(
                select(AuditEntry.action, AuditEntry.detail).where(
                    col(AuditEntry.entity_id) == customer, col(AuditEntry.entity) == "customer"
                )
            )
        ).all()
    assert any(a == "customer.update" and "reminder" in str(d) for a, d in actions)
    await owner.person.send("/my")
    assert "逾期 0 个" in owner.person.last_text()
    clock.set(utc(2026, 11, 22, 1, 0))  # 09:00 the next day, not 23:50
    await tick(world)
    assert texts(world, owner)[-1] == "📞 今天该跟进：推迟公司（KH-2026-000001）"


async def test_snooze_ten_past_midnight_is_the_next_calendar_day(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await due_follow_up(world, clock, owner, date(2026, 11, 21), utc(2026, 11, 21, 1))
    clock.set(utc(2026, 11, 21, 16, 10))  # 00:10 on the 22nd in Shanghai
    await owner.person.press("明天再提醒")
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 23)
    [row] = await rows(world, kind=Kind.followup)
    assert row.snoozed_until == utc(2026, 11, 23, 1, 0)


async def test_snooze_across_a_month_end_in_english(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=BERLIN, language="en")
    customer = await due_follow_up(world, clock, owner, date(2026, 11, 30), utc(2026, 11, 30, 8))
    clock.set(utc(2026, 11, 30, 22, 50))  # 23:50 in Berlin on the last of November
    await owner.person.press("Snooze 3 days")
    assert owner.person.last_answer() == (
        "⏰ Snoozed: the follow-up is now on 2026-12-03; I will remind you 2026-12-03 09:00"
    )
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 12, 3)
    assert buttons(last_of(world, owner)) == []
    clock.set(utc(2026, 12, 3, 8, 0))
    await tick(world)
    assert texts(world, owner)[-1] == "📞 Follow-up due today: 推迟公司 (KH-2026-000001)"


async def test_a_snoozed_stale_prompt_returns_tomorrow_at_the_follow_up_hour(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "老客户", approved_at=utc(2026, 1, 1))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    clock.set(utc(2026, 11, 21, 15, 50))
    await owner.person.press("明天再提醒")
    [row] = await rows(world, kind=Kind.stale)
    assert (row.status, row.due_at) == ("pending", utc(2026, 11, 22, 1, 0))
    assert (await customer_row(world, customer)).next_followup_on is None  # not a follow-up


async def test_a_stale_snooze_button_after_the_date_moved_is_refused(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await due_follow_up(world, clock, owner, date(2026, 11, 21), utc(2026, 11, 21, 1))
    message = last_of(world, owner)
    later = next(d for t, d in buttons(message) if "3 天" in t)  # a copy of the old buttons
    await owner.person.press("明天再提醒", message)
    await owner.person.press_data(message, later)
    assert (
        owner.person.last_answer()
        == "情况已有变化（例如已记录拜访或客户已移交），这条提醒不再需要。"
    )
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 22)
