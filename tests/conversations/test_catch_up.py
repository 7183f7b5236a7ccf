"""Planning at a large company's size (issue 14), through the bot's surface: after days down
each person gets one catch-up about what fell due, not a replay of every missed day; an ordinary
poll reads nothing when nothing changed; a change between polls is still planned; two pollers
at once still write each reminder once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, update
from sqlmodel import col, select

from bot.i18n import translate
from storage import reminders as store
from storage.db import unit_of_work
from storage.models import Customer, Reminder
from storage.reminders import Kind, cursor, registry, stale
from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import draft_of
from tests.auxil.world import World
from tests.conversations import test_reminders as base
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

LONG_NAME = "宝" * 200  # customers.name at its longest
PATIENCE = 5.0  # seconds; SQLite's busy timeout is 10, so a write that queued would exceed it


async def plan(world: World, clock: Clock) -> dict[str, int]:
    services = world.services
    rules = store.Rules.from_settings(services.settings)
    return await store.plan(services.sessions, keyring=services.keyring, rules=rules, now=clock())


def catch_ups(world: World, who: Any, language: str) -> list[dict[str, Any]]:
    title = translate(language, "reminders.item.catch_up", start="", end="").split("(")[0]
    return [m for m in world.telegram.sent_to(who.person.id) if title in m.get("text", "")]


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_after_a_week_down_each_person_gets_one_summary_of_what_fell_due(
    world: World, clock: Clock, language: str
) -> None:
    owner = await member(world, timezone=SHANGHAI, language=language)
    manager = await member(world, "manager", timezone=SHANGHAI, language=language, name="Wu")
    clock.set(utc(2026, 11, 12, 2, 0))  # 10:00 in Shanghai: the bot runs
    await tick(world)
    # forty follow-ups, the longest names, due on the days the bot will be down, one today
    for index in range(40):
        on = date(2026, 11, 14) + timedelta(days=index % 5)
        await add_customer(world, owner, f"{LONG_NAME[:-3]}{index:03d}", next_followup_on=on)
    today = await add_customer(world, owner, "今天公司", next_followup_on=date(2026, 11, 20))
    clock.set(utc(2026, 11, 20, 2, 0))  # back after eight days
    await tick(world)
    [summary] = catch_ups(world, owner, language)
    assert translate(language, "catch_up.own", count=40) in summary["text"]
    assert "2026-11-14" in summary["text"] and "2026-11-19" in summary["text"]
    assert [data for _, data in buttons(summary)] == ["td:r"]
    [team_summary] = catch_ups(world, manager, language)
    # escalations of the follow-ups due 14th–16th (three days overdue by the 19th)
    assert translate(language, "catch_up.team", count=24) in team_summary["text"]
    # no day of the week is replayed: the follow-ups planned are today's and tomorrow's only
    planned = await rows(world, kind=Kind.followup)
    assert {r.subject_id for r in planned} == {today}
    # escalations: only of the follow-ups that become three days overdue today or tomorrow
    escalated = await rows(world, kind=Kind.overdue)
    assert escalated and all(r.period_on >= date(2026, 11, 17) for r in escalated)
    # a restart (a new poll at the same moment) sends nothing again
    await tick(world)
    assert len(catch_ups(world, owner, language)) == 1
    assert len(await rows(world, kind=Kind.catch_up)) == 2
    # one tap: today's plan
    reply = await owner.person.press_data(summary, "td:r")
    assert reply and translate(language, "today.title", date="", weekday="")[:3] in str(reply)


async def test_follow_ups_done_before_delivery_are_not_counted(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI)
    clock.set(utc(2026, 11, 12, 2, 0))
    await tick(world)
    first = await add_customer(world, owner, "甲", next_followup_on=date(2026, 11, 15))
    await add_customer(world, owner, "乙", next_followup_on=date(2026, 11, 16))
    clock.set(utc(2026, 11, 19, 13, 30))  # 21:30 in Shanghai: quiet hours hold it
    await tick(world)
    assert catch_ups(world, owner, "zh") == []
    async with unit_of_work(world.services.sessions) as session:  # 甲 moved on, overnight
        await session.exec(
            update(Customer)
            .where(col(Customer.id) == first)
            .values(next_followup_on=date(2026, 12, 1), updated_at=clock())
        )
    clock.set(utc(2026, 11, 20, 1, 0))  # 09:00 in Shanghai
    await tick(world)
    [summary] = catch_ups(world, owner, "zh")
    assert translate("zh", "catch_up.own", count=1) in summary["text"]


class Statements:
    """The SQL the engine runs while it is on."""

    def __init__(self, world: World) -> None:
        self.seen: list[str] = []
        self.engine = world.services.sessions.kw["bind"].sync_engine

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _c: Any, _cur: Any, statement: str, *_: Any) -> None:
        self.seen.append(" ".join(statement.split()))


async def test_an_ordinary_poll_reads_no_window_and_writes_no_reminder(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    for index in range(30):
        on = date(2026, 11, 20) + timedelta(days=index % 2)  # today and tomorrow
        await add_customer(world, owner, f"客户{index}", next_followup_on=on)
    clock.set(utc(2026, 11, 20, 2, 0))
    first = await plan(world, clock)
    assert first["followup"] == 30
    clock.advance(minutes=1)
    with Statements(world) as sql:
        again = await plan(world, clock)
    assert sum(again.values()) == 0
    assert not [s for s in sql.seen if s.startswith("INSERT INTO reminders")]
    # the follow-up window is read only through the customers changed since (updated_at)
    windows = [s for s in sql.seen if "FROM customers" in s and "next_followup_on" in s]
    assert windows and all("customers.updated_at >" in s for s in windows)


async def test_a_customer_changed_between_polls_is_planned_again(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    other = await member(world, timezone=SHANGHAI, name="Zhao")
    moved = await add_customer(world, owner, "改期", next_followup_on=date(2026, 12, 10))
    handed = await add_customer(world, owner, "转交", next_followup_on=date(2026, 11, 20))
    archived = await add_customer(world, owner, "归档", next_followup_on=date(2026, 12, 10))
    clock.set(utc(2026, 11, 20, 0, 30))  # 08:30 in Shanghai, before the follow-up hour
    await plan(world, clock)
    clock.advance(minutes=1)
    async with unit_of_work(world.services.sessions) as session:
        for cid, values in (
            (moved, {"next_followup_on": date(2026, 11, 21)}),
            (handed, {"owner_id": other.staff_id}),
            (archived, {"next_followup_on": date(2026, 11, 20), "status": "archived"}),
        ):
            await session.exec(
                update(Customer).where(col(Customer.id) == cid).values(**values, updated_at=clock())
            )
    clock.advance(minutes=1)
    again = await plan(world, clock)
    assert again["followup"] == 2
    planned = {(r.subject_id, r.recipient_id) for r in await rows(world, kind=Kind.followup)}
    assert (moved, owner.staff_id) in planned and (handed, other.staff_id) in planned
    assert all(subject != archived for subject, _ in planned)
    clock.set(utc(2026, 11, 20, 1, 0))  # 09:00: the old owner is no longer told of 转交
    await tick(world)
    sent = " ".join(m.get("text", "") for m in world.telegram.sent_to(owner.person.id))
    assert "转交" not in sent and "归档" not in sent
    assert "转交" in " ".join(m.get("text", "") for m in world.telegram.sent_to(other.person.id))


async def test_two_pollers_at_once_write_each_reminder_and_each_catch_up_once(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    await member(world, "manager", timezone=SHANGHAI, name="Wu")
    for index in range(20):
        on = date(2026, 11, 14) + timedelta(days=index % 8)
        await add_customer(world, owner, f"并发{index}", next_followup_on=on)
    clock.set(utc(2026, 11, 12, 2, 0))
    await plan(world, clock)
    clock.set(utc(2026, 11, 20, 2, 0))
    results = await asyncio.gather(*(plan(world, clock) for _ in range(3)))
    assert sum(r.get("catch_up", 0) for r in results) == 2
    async with unit_of_work(world.services.sessions) as session:
        keys = (
            await session.exec(
                select(Reminder.dedup_key, func.count()).group_by(Reminder.dedup_key)
            )
        ).all()
    assert keys and all(n == 1 for _, n in keys)
    again = await plan(world, clock)
    assert sum(again.values()) == 0


async def test_a_poll_over_a_large_archive_plans_one_whole_day_and_the_next_goes_on(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As over a million customers, where one day's read takes longer than the budget: after
    days down, today is planned first and tomorrow at the next poll; after a staff change the
    window is read again a day a poll; nothing is planned twice, nothing is left out."""
    monkeypatch.setattr(cursor, "DAY_BUDGET", -1.0)  # never time for a second whole day
    owner = await member(world, timezone=SHANGHAI)
    clock.set(utc(2026, 11, 12, 2, 0))
    await plan(world, clock)
    missed = await add_customer(world, owner, "错过", next_followup_on=date(2026, 11, 16))
    today = await add_customer(world, owner, "今天", next_followup_on=date(2026, 11, 20))
    tomorrow = await add_customer(world, owner, "明天", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 20, 0, 30))  # back after eight days, before the follow-up hour
    first = await plan(world, clock)
    assert first["catch_up"] == 1
    assert {r.subject_id for r in await rows(world, kind=Kind.followup)} == {today}
    clock.advance(minutes=1)
    second = await plan(world, clock)
    assert second.get("catch_up", 0) == 0
    assert {r.subject_id for r in await rows(world, kind=Kind.followup)} == {today, tomorrow}
    assert missed not in {r.subject_id for r in await rows(world, kind=Kind.followup)}
    # a staff change: the whole window again, one day a poll, and nothing doubled
    await member(world, "manager", timezone=SHANGHAI, name="Wu")
    for _ in range(2):
        clock.advance(minutes=1)
        with Statements(world) as sql:
            await plan(world, clock)
        whole = [
            s
            for s in sql.seen
            if "FROM customers" in s and "next_followup_on" in s and "updated_at" not in s
        ]
        assert whole, "each of these polls reads one whole day"
    clock.advance(minutes=1)
    with Statements(world) as sql:
        assert sum((await plan(world, clock)).values()) == 0
    windows = [s for s in sql.seen if "FROM customers" in s and "next_followup_on" in s]
    assert windows and all("customers.updated_at >" in s for s in windows)
    followups = await rows(world, kind=Kind.followup)
    assert sorted(r.subject_id for r in followups) == sorted([today, tomorrow])
    assert len(await rows(world, kind=Kind.catch_up)) == 1


async def test_a_wizard_step_goes_on_while_the_daily_planners_look_for_records_to_recheck(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a million customers finding the records to re-check takes seconds: the member's
    draft is saved meanwhile (on SQLite the finding holds no write lock)."""
    owner = await member(world, timezone=SHANGHAI)
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow_find(session: Any, ctx: Any) -> Any:
        rows = await stale.find(session, ctx)
        inside.set()
        await release.wait()  # still in the planner's transaction
        return rows

    slow = dataclasses.replace(stale.PLANNER, find=slow_find)
    monkeypatch.setattr(registry, "PLANNERS", (slow,))
    clock.set(utc(2026, 11, 20, 2, 0))
    planning = asyncio.create_task(plan(world, clock))
    await asyncio.wait_for(inside.wait(), PATIENCE)
    try:
        reply = await asyncio.wait_for(owner.person.send("/new"), PATIENCE)
        assert reply, "the wizard answered while the planner was finding"
        draft = await draft_of(world.services.sessions, owner.person.id)
        assert draft is not None and draft.flow == "new"
    finally:
        release.set()
        await planning


async def test_a_poll_runs_one_periodic_planner_when_it_has_no_time_for_more(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As over a million customers, where records to re-check alone take a second: the planners
    that run every few hours go one a poll, each once; the every-poll planners run every poll."""
    monkeypatch.setattr(registry, "PERIODIC_BUDGET", -1.0)
    periodic = {p.name for p in registry.PLANNERS if p.every is not None}
    assert {"birthday", "stale", "survey"} <= periodic
    await member(world, timezone=SHANGHAI)
    clock.set(utc(2026, 11, 20, 2, 0))
    seen: list[str] = []
    for _ in range(len(periodic)):
        ran = await plan(world, clock)
        assert "followup" in ran and "overdue" in ran  # every poll
        now_periodic = [name for name in ran if name in periodic]
        assert len(now_periodic) == 1, ran
        seen += now_periodic
        clock.advance(minutes=1)
    assert sorted(seen) == sorted(periodic)  # each once, in turn
    assert not [name for name in await plan(world, clock) if name in periodic]
    # with time to spare (a small archive) they all run in one poll, as before
    monkeypatch.setattr(registry, "PERIODIC_BUDGET", 60.0)
    clock.advance(days=1)
    ran = await plan(world, clock)
    assert {"stale", "survey"} <= set(ran)
