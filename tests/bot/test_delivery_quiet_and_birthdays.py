"""Held reminders follow the quiet hours in force now; a new key person's birthday is planned
within one poll. The clock moves, the scheduler ticks, and the message arrives (once)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot import scheduler
from bot.context import Services
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import reminders as store
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Staff
from tests.auxil.fake_telegram import TOKEN
from tests.auxil.world import ADMIN_ID, World
from tests.conversations.test_reminders import (
    SHANGHAI,
    Clock,
    FakeTime,
    add_customer,
    add_key_person,
    member,
    rows,
    texts,
    utc,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        WEEKLY_SUMMARY_WEEKDAY=3,
        AUDIT_HEAD_DAYS=0,
        POOL_AFTER_DAYS="off",
        QUIET_HOURS="21-8",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 20, 14, 0))  # 22:00 in Shanghai: quiet


@pytest.fixture
def services(
    settings: Settings, session_factory: SessionFactory, keyring: Keyring, clock: Clock
) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=clock)


@pytest.fixture(autouse=True)
def fake_pacing(world: World) -> None:
    pacing = FakeTime()
    world.app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))


def with_quiet_hours(services: Services, value: str) -> None:
    """The admin changes QUIET_HOURS (the bot reads its settings afresh at each pass)."""
    services.settings = services.settings.model_copy(update={"QUIET_HOURS": value})


async def set_own_quiet_hours(world: World, staff_id: int, value: str | None) -> None:
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, staff_id)
        assert staff is not None
        staff.quiet_hours = value
        session.add(staff)


async def held_followup(world: World, clock: Clock) -> tuple[object, int]:
    """A follow-up due today, first seen at 22:00 (quiet): held until 08:00."""
    owner = await member(world, timezone=SHANGHAI)
    await add_customer(world, owner, "夜间公司", next_followup_on=date(2026, 11, 20))
    await scheduler.run_once(world.app)
    [row] = await rows(world, kind="followup")
    assert row.status == "pending" and row.last_error == store.QUIET_HOLD
    assert row.next_attempt_at == utc(2026, 11, 21, 0, 0)  # 08:00 in Shanghai
    assert texts(world, owner) == []
    return owner, row.id or 0


async def test_quiet_hours_shortened_after_the_hold_send_the_held_reminder_now(
    world: World, services: Services, clock: Clock
) -> None:
    owner, _row = await held_followup(world, clock)
    clock.advance(minutes=30)  # 22:30
    with_quiet_hours(services, "23-7")
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1  # 22:30 is no longer quiet: sent now, not at 08:00
    clock.set(utc(2026, 11, 21, 0, 0))
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1  # and only once
    [row] = await rows(world, kind="followup")
    assert row.status == "sent"


async def test_quiet_hours_switched_off_send_at_once(
    world: World, services: Services, clock: Clock
) -> None:
    owner, _row = await held_followup(world, clock)
    with_quiet_hours(services, "")
    clock.advance(minutes=1)
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1


async def test_a_persons_own_quiet_hours_changed_after_the_hold_are_followed(
    world: World, services: Services, clock: Clock
) -> None:
    owner, _row = await held_followup(world, clock)
    await set_own_quiet_hours(world, owner.staff_id, "0-6")  # a night owl: quiet after midnight
    clock.advance(minutes=5)
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1


async def test_quiet_hours_lengthened_hold_the_reminder_again_until_they_end(
    world: World, services: Services, clock: Clock
) -> None:
    owner, _row = await held_followup(world, clock)
    with_quiet_hours(services, "21-10")
    clock.set(utc(2026, 11, 21, 0, 0))  # 08:00: the old end of the hold
    await scheduler.run_once(world.app)
    assert texts(world, owner) == []
    [row] = await rows(world, kind="followup")
    assert row.next_attempt_at == utc(2026, 11, 21, 2, 0)  # 10:00, the new end
    clock.set(utc(2026, 11, 21, 2, 0))
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1


async def test_a_held_reminder_whose_reason_went_away_is_not_sent_when_released(
    world: World, services: Services, clock: Clock
) -> None:
    """Released early, it is still read afresh at delivery: a deactivated owner gets nothing."""
    owner, _row = await held_followup(world, clock)
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.id == owner.staff_id))).one()
        staff.active = False
        session.add(staff)
    with_quiet_hours(services, "")
    clock.advance(minutes=1)
    await scheduler.run_once(world.app)
    assert texts(world, owner) == []
    [row] = await rows(world, kind="followup")
    assert row.status != "pending" or row.last_error != store.QUIET_HOLD


# ---------------------------------------------------------------------------------------------
# birthdays


async def test_a_new_key_persons_birthday_is_noticed_at_the_next_poll(
    world: World, services: Services, clock: Clock
) -> None:
    clock.set(utc(2026, 11, 20, 2, 0))  # 10:00 in Shanghai
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "生日公司")
    await scheduler.run_once(world.app)  # the full birthday planner ran: nothing to plan
    assert await rows(world, kind="birthday") == []
    await add_key_person(world, customer, "王总", "1980-11-23")  # in 3 days: noticed today
    clock.advance(seconds=60)  # one poll later, well inside the full planner's 6 hours
    tick = await scheduler.run_once(world.app)
    assert tick.planned.get("birthday_changed", 0) >= 1
    assert "birthday" not in tick.planned  # the full re-plan still waits for its 6 hours
    [message] = texts(world, owner)
    assert "王总" in message
    clock.advance(seconds=60)
    await scheduler.run_once(world.app)
    assert len(texts(world, owner)) == 1  # planned once, sent once


async def test_many_key_persons_added_at_once_are_all_planned_in_one_poll(
    world: World, services: Services, clock: Clock
) -> None:
    clock.set(utc(2026, 11, 20, 2, 0))
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "大客户")
    await scheduler.run_once(world.app)
    for n in range(40):
        await add_key_person(world, customer, f"联系人{n}", "1975-11-23")  # in 3 days
    clock.advance(seconds=60)
    await scheduler.run_once(world.app)
    planned = await rows(world, kind="birthday")
    assert len(planned) == 40  # the "3 days before" notices, due today
    assert {r.status for r in planned} == {"sent"}
    assert len(texts(world, owner)) >= 1  # grouped into as few messages as fit


async def test_an_old_unchanged_key_person_is_left_to_the_full_re_plan(
    world: World, services: Services, clock: Clock
) -> None:
    """The every-poll planner reads only what changed since its last run (and a margin)."""
    from storage.reminders import birthday

    assert timedelta(minutes=10) >= birthday.OVERLAP
    assert birthday.CHANGED_PLANNER.every is None  # every poll
    assert birthday.PLANNER.every == timedelta(hours=6)
