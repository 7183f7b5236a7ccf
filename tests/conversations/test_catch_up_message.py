"""The catch-up message through the bot's surface (issue 14): what a person gets after a week
down fits Telegram's limits with the most data (hundreds of follow-ups, the longest names), in
zh and en; its one button opens the /today plan, which fits too; a stale press (everything
done since, a day later), a forged one and one by a deactivated person are handled."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from bot.i18n import translate
from storage.db import unit_of_work
from storage.models import Customer, Staff
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as base
from tests.conversations.test_catch_up import LONG_NAME, catch_ups
from tests.conversations.test_reminders import (
    SHANGHAI,
    Clock,
    add_customer,
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


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def a_week_down(world: World, clock: Clock, language: str, count: int) -> tuple:
    """An owner with `count` follow-ups (the longest names) due while the bot was down, and a
    manager of the team; the bot comes back after eight days."""
    owner = await member(world, timezone=SHANGHAI, language=language)
    manager = await member(world, "manager", timezone=SHANGHAI, language=language, name="Wu")
    clock.set(utc(2026, 11, 12, 2, 0))
    await tick(world)
    for index in range(count):
        on = date(2026, 11, 14) + timedelta(days=index % 6)  # the missed days
        await add_customer(world, owner, f"{LONG_NAME[:-4]}{index:04d}", next_followup_on=on)
    clock.set(utc(2026, 11, 20, 2, 0))  # 10:00 in Shanghai, eight days on
    await tick(world)
    return owner, manager


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_the_summary_after_a_week_down_fits_and_its_button_opens_a_plan_that_fits(
    world: World, clock: Clock, language: str
) -> None:
    owner, manager = await a_week_down(world, clock, language, 150)
    assert world.telegram.refused == []
    [summary] = catch_ups(world, owner, language)
    [team_summary] = catch_ups(world, manager, language)
    for message in (summary, team_summary):
        assert units(message["text"]) <= TELEGRAM_TEXT
        assert LONG_NAME[:20] not in message["text"]  # counts, never a list of names
        assert [data for _, data in buttons(message)] == ["td:r"]
        assert all(len(data.encode()) <= TELEGRAM_DATA for _, data in buttons(message))
    assert translate(language, "catch_up.own", count=150) in summary["text"]
    assert "2026-11-14" in summary["text"] and "2026-11-19" in summary["text"]
    # one message each, nothing of the week replayed as reminders of its own
    assert len(await rows(world, kind=Kind.catch_up)) == 2
    assert all(r.period_on >= date(2026, 11, 20) for r in await rows(world, kind=Kind.followup))
    # the tap: today's plan, the longest names fitted, the rest pointed to
    reply = await owner.person.press_data(summary, "td:r")
    [plan] = [m for m in reply if "text" in m]
    assert units(plan["text"]) <= TELEGRAM_TEXT
    assert translate(language, "today.title", date="", weekday="")[:3] in plan["text"]
    assert translate(language, "today.more", count=0, where="/my").split("0")[0] in plan["text"]
    assert world.telegram.refused == []


async def test_a_stale_press_shows_the_plan_as_it_is_now(world: World, clock: Clock) -> None:
    owner, manager = await a_week_down(world, clock, "en", 12)
    [summary] = catch_ups(world, owner, "en")
    [team_summary] = catch_ups(world, manager, "en")
    async with unit_of_work(world.services.sessions) as session:  # all followed up since
        await session.exec(
            update(Customer)
            .where(col(Customer.owner_id) == owner.staff_id)
            .values(next_followup_on=date(2026, 12, 20), updated_at=clock())
        )
    clock.advance(days=1)  # and the press comes a day later
    reply = await owner.person.press_data(summary, "td:r")
    [plan] = [m for m in reply if "text" in m]
    assert translate("en", "today.nothing") in plan["text"]
    # a forged variant of the button: expired, nothing sent
    before = len(world.telegram.sent_to(owner.person.id))
    await owner.person.press_data(summary, "td:x")
    assert owner.person.last_answer() == translate("en", "button.expired")
    assert len(world.telegram.sent_to(owner.person.id)) == before
    # the manager, deactivated since the summary: their press opens nothing
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, manager.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    sent = len(world.telegram.sent_to(manager.person.id))
    await manager.person.press_data(team_summary, "td:r")
    today_title = translate("en", "today.title", date="", weekday="")[:3]
    assert not any(
        today_title in m.get("text", "") for m in world.telegram.sent_to(manager.person.id)[sent:]
    )
    # and no new catch-up for anyone: the week was told of once
    await tick(world)
    assert len(await rows(world, kind=Kind.catch_up)) == 2
