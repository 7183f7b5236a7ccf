"""Every press on a reminder re-loads the records and re-checks permission (issue 13): stale
presses (archived, destroyed, the complaint resolved by someone else, the user deactivated),
forged button data, two people (or two taps) at once, and a restart in between."""

from __future__ import annotations

import asyncio
from datetime import date

from sqlmodel import col, select

from storage.db import unit_of_work
from storage.models import AuditEntry, ChangeRecord, Complaint, Customer, Reminder, Staff
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World, start_app
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    NOT_FOUND,
    SHANGHAI,
    Clock,
    add_complaint,
    add_customer,
    change_customer,
    customer_row,
    labels,
    last_of,
    member,
    rows,
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

MORNING = utc(2026, 11, 21, 1, 0)
OUTDATED = "情况已有变化（例如已记录拜访或客户已移交），这条提醒不再需要。"


async def complaint_status(world: World, complaint_id: int) -> str:
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Complaint, complaint_id)
        assert found is not None
        return found.status


async def two_due(world: World, clock: Clock) -> tuple[reminders.Member, int, int, dict]:
    owner = await member(world, timezone=SHANGHAI)
    first = await add_customer(world, owner, "甲公司", next_followup_on=date(2026, 11, 21))
    second = await add_customer(world, owner, "乙公司", next_followup_on=date(2026, 11, 21))
    clock.set(MORNING)
    await tick(world)
    return owner, first, second, last_of(world, owner)


async def test_an_archived_customer_refuses_the_done_button(world: World, clock: Clock) -> None:
    owner, first, second, grouped = await two_due(world, clock)
    await change_customer(world, first, status="archived")
    await owner.person.press("1. ✅", grouped)
    assert owner.person.last_answer() in (OUTDATED, NOT_FOUND)
    assert (await customer_row(world, first)).next_followup_on == date(2026, 11, 21)
    assert labels(grouped) == ["2. ✅ 已完成：乙公司"]  # settled: the stale item's button went
    await owner.person.press("2. ✅", grouped)
    assert (await customer_row(world, second)).next_followup_on == date(2026, 12, 21)


async def test_a_destroyed_customer_refuses_and_shows_nothing(world: World, clock: Clock) -> None:
    owner, first, _, grouped = await two_due(world, clock)
    await change_customer(world, first, status="destroyed")
    await owner.person.press("1. ✅", grouped)
    assert owner.person.last_answer() in (OUTDATED, NOT_FOUND)
    assert (await customer_row(world, first)).next_followup_on == date(2026, 11, 21)


async def test_a_deactivated_user_can_act_on_nothing(world: World, clock: Clock) -> None:
    owner, first, _, grouped = await two_due(world, clock)
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, owner.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    await owner.person.press("1. ✅", grouped)
    assert (await customer_row(world, first)).next_followup_on == date(2026, 11, 21)
    assert {r.acted for r in await rows(world, kind=Kind.followup)} == {None}


async def test_a_forged_press_for_someone_elses_reminder_is_refused_and_audited(
    world: World, clock: Clock
) -> None:
    _owner, first, _, _grouped = await two_due(world, clock)
    intruder = await member(world, team="West", timezone=SHANGHAI, name="Zhao")
    manager_west = await member(world, "manager", team="West", timezone=SHANGHAI, name="Sun")
    [row, *_] = await rows(world, kind=Kind.followup)
    mine = {"message_id": 1, "chat": {"id": intruder.person.id, "type": "private"}, "date": 0}
    for data in (f"rm:K:{row.id}", f"rm:A:{row.id}", f"rm:c:{row.id}", f"rm:m:{row.id}"):
        await intruder.person.press_data({**mine, "text": "x"}, data)
        assert intruder.person.last_answer() in (NOT_FOUND, "这条提醒已经不需要了。")
    for data in ("rm:K:abc", "rm:m:1:x", "rm:K:99999999999", "rm:zz:1"):
        await intruder.person.press_data({**mine, "text": "x"}, data)
        assert intruder.person.last_answer() is not None
    # a manager of another team forging the card button of an East customer
    await manager_west.person.press_data({**mine, "text": "x"}, f"cu:{first}")
    assert manager_west.person.last_answer() == NOT_FOUND
    assert (await customer_row(world, first)).next_followup_on == date(2026, 11, 21)
    async with unit_of_work(world.services.sessions) as session:
        denied = (
            await session.exec(
                select(AuditEntry).where(
                    col(AuditEntry.action) == "access.denied",
                    col(AuditEntry.actor_staff_id) == intruder.staff_id,
                )
            )
        ).all()
    assert len(denied) >= 4


async def test_two_taps_at_once_on_done_act_once(world: World, clock: Clock) -> None:
    owner, first, _, grouped = await two_due(world, clock)
    data = buttons(grouped)[0][1]
    copy = dict(grouped)
    await asyncio.gather(
        owner.person.press_data(grouped, data), owner.person.press_data(copy, data)
    )
    assert (await customer_row(world, first)).next_followup_on == date(2026, 12, 21)
    async with unit_of_work(world.services.sessions) as session:
        changes = (
            await session.exec(select(ChangeRecord).where(col(ChangeRecord.customer_id) == first))
        ).all()
    assert len(changes) == 1


async def test_two_people_taking_one_complaint_at_once_one_wins(world: World, clock: Clock) -> None:
    handler = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    customer = await add_customer(world, handler, "投诉公司")
    complaint = await add_complaint(
        world, customer, handler, received_at=utc(2026, 11, 20), hours=24
    )
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    mine, theirs = last_of(world, handler), last_of(world, manager)
    take = "🙋 接手"
    assert take in labels(mine) and take in labels(theirs)
    await asyncio.gather(handler.person.press(take, mine), manager.person.press(take, theirs))
    assert await complaint_status(world, complaint) == "in_progress"
    async with unit_of_work(world.services.sessions) as session:
        taken = (
            await session.exec(
                select(AuditEntry).where(
                    col(AuditEntry.entity) == "complaint",
                    col(AuditEntry.entity_id) == complaint,
                    col(AuditEntry.action) != "access.denied",
                )
            )
        ).all()
    assert len(taken) == 1


async def test_a_complaint_resolved_by_someone_else_meanwhile(world: World, clock: Clock) -> None:
    handler = await member(world, timezone=SHANGHAI, name="Wang")
    customer = await add_customer(world, handler, "投诉公司")
    one = await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=24)
    await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=24)
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    grouped = world.telegram.sent_to(handler.person.id)[0]
    assert len(buttons(grouped)) == 2
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Complaint, one)
        assert found is not None
        found.status = "resolved"
        session.add(found)
    await handler.person.press("1. 🙋", grouped)
    assert handler.person.last_answer() == "这条提醒已经不需要了。"
    assert await complaint_status(world, one) == "resolved"
    assert len(buttons(world.telegram.sent_to(handler.person.id)[0])) == 1


async def test_a_restart_between_delivery_and_press_changes_nothing(
    world: World, clock: Clock
) -> None:
    owner, first, _, grouped = await two_due(world, clock)
    old = world.app
    world.app = await start_app(world.services, world.telegram)  # the bot restarted
    owner.person.app = world.app
    try:
        await owner.person.press("1. ✅", grouped)
    finally:
        await world.app.shutdown()
        world.app = old
    assert (await customer_row(world, first)).next_followup_on == date(2026, 12, 21)


async def test_a_reminder_reassigned_away_does_not_show_another_teams_data(
    world: World, clock: Clock
) -> None:
    owner, first, _, grouped = await two_due(world, clock)
    west = await member(world, team="West", timezone=SHANGHAI, name="Zhao")
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Customer, first)
        staff = await session.get(Staff, west.staff_id)
        assert found is not None and staff is not None
        found.owner_id, found.team_id = west.staff_id, staff.team_id
        session.add(found)
    [row, *_] = await rows(world, kind=Kind.followup)
    await owner.person.press_data(grouped, f"rm:m:{row.id}")
    listing = last_of(world, owner)
    assert "甲公司" not in listing["text"] and "乙公司" in listing["text"]
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.get(Reminder, row.id)) is not None
