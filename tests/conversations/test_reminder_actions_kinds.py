"""Every reminder kind carries the button of its most likely action, and one press does it
(issue 13, "Reminders"): through the bot's surface, in zh and en, the database asserted.

The world, the clock and the record builders are test_reminders.py's.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select

from storage.db import unit_of_work
from storage.models import Complaint, Customer, Reminder
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.world import World
from tests.conversations import test_reminders as reminders
from tests.conversations.test_reminders import (
    BERLIN,
    NOT_FOUND,
    SHANGHAI,
    Clock,
    add_complaint,
    add_customer,
    add_key_person,
    add_review,
    customer_row,
    labels,
    last_of,
    member,
    rows,
    texts,
    tick,
    utc,
)

# test_reminders.py's fixtures: its settings, clock, paced sender
settings, services, clock, pacing = (
    reminders.settings,
    reminders.services,
    reminders.clock,
    reminders.pacing,
)
fake_pacing, fresh_numbers = reminders.fake_pacing, reminders.fresh_numbers

MORNING = utc(2026, 11, 21, 1, 0)  # 09:00 in Shanghai


async def complaint_row(world: World, complaint_id: int) -> Complaint:
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Complaint, complaint_id)
        assert found is not None
        return found


async def test_a_follow_up_is_done_in_one_tap_and_its_card_is_one_tap_away(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=BERLIN, language="en")
    customer = await add_customer(world, owner, "Hudson Tools", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 8, 0))  # 09:00 in Berlin
    await tick(world)
    message = last_of(world, owner)
    assert labels(message)[-1] == "📇 Card"
    assert buttons(message)[-1][1] == f"cu:{customer}"
    await owner.person.press("📇 Card", message)
    assert "Hudson Tools" in texts(world, owner)[-1]  # the card, with its own buttons
    await owner.person.press("✅ Done", message)
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 12, 21)
    [row] = await rows(world, kind=Kind.followup)
    assert row.acted == "done"


async def test_an_overdue_digest_opens_each_customer_in_one_tap(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Qian")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    first = await add_customer(world, owner, "甲公司", next_followup_on=date(2026, 11, 18))
    second = await add_customer(world, owner, "乙公司", next_followup_on=date(2026, 11, 18))
    clock.set(MORNING)  # three days overdue
    await tick(world)
    [digest] = world.telegram.sent_to(manager.person.id)
    assert labels(digest) == ["1. 📇 档案：甲公司", "2. 📇 档案：乙公司"]
    assert [data for _, data in buttons(digest)] == [f"cu:{first}", f"cu:{second}"]
    await manager.person.press("2. 📇 档案：乙公司", digest)
    card = last_of(world, manager)
    assert card is not digest and "乙公司" in card["text"]
    assert labels(world.telegram.sent_to(manager.person.id)[0]) == labels(digest)  # still there


async def test_a_complaint_reminder_takes_and_resolves_through_the_complaint_rules(
    world: World, clock: Clock
) -> None:
    handler = await member(world, timezone=SHANGHAI, name="Wang")
    customer = await add_customer(world, handler, "投诉公司")
    complaint = await add_complaint(
        world, customer, handler, received_at=utc(2026, 11, 20), hours=48
    )
    clock.set(utc(2026, 11, 22, 0, 0))  # past its due time
    await tick(world)
    message = last_of(world, handler)
    assert labels(message) == ["🙋 接手", "✅ 处理完成", "📣 投诉", "📇 档案"]
    await handler.person.press("🙋 接手", message)
    assert (await complaint_row(world, complaint)).status == "in_progress"
    # the card the complaint flow sends offers the resolution next
    assert any("处理" in label for label in labels(last_of(world, handler)))


async def test_complaints_in_a_grouped_message_are_taken_one_item_at_a_time(
    world: World, clock: Clock
) -> None:
    handler = await member(world, timezone=BERLIN, name="Anna", language="en")
    customer = await add_customer(world, handler, "Klage GmbH")
    one = await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=48)
    two = await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=48)
    clock.set(utc(2026, 11, 22, 8, 0))
    await tick(world)
    grouped = world.telegram.sent_to(handler.person.id)[0]
    assert labels(grouped) == ["1. 🙋 Take it: Klage GmbH", "2. 🙋 Take it: Klage GmbH"]
    await handler.person.press("2. 🙋 Take it", grouped)
    assert (await complaint_row(world, two)).status == "in_progress"
    assert (await complaint_row(world, one)).status == "open"
    settled = world.telegram.sent_to(handler.person.id)[0]
    assert labels(settled) == ["1. 🙋 Take it: Klage GmbH"]  # only that item's button went
    assert "→ 2. 🙋 Take it: Klage GmbH: ▶️" in settled["text"]
    assert "Klage GmbH" in last_of(world, handler)["text"]  # the complaint's card


async def test_a_birthday_opens_the_key_persons_in_one_tap(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "生日公司")
    await add_key_person(world, customer, "赵总", "1980-11-24")
    clock.set(MORNING)
    await tick(world)
    message = last_of(world, owner)
    assert labels(message) == ["👤 关键人", "📇 档案"]
    await owner.person.press("👤 关键人", message)
    assert "赵总" in last_of(world, owner)["text"]


async def test_a_pending_review_and_the_digest_open_each_review_card(
    world: World, clock: Clock
) -> None:
    submitter = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=BERLIN, name="Weber", language="en")
    first = await add_customer(world, submitter, "Erste AG", status="pending")
    second = await add_customer(world, submitter, "Zweite AG", status="pending")
    review_one = await add_review(world, first, submitter, submitted_at=utc(2026, 11, 20, 3))
    review_two = await add_review(world, second, submitter, submitted_at=utc(2026, 11, 20, 3))
    clock.set(utc(2026, 11, 21, 8, 0))  # the digest hour in Berlin
    await tick(world)
    sent = world.telegram.sent_to(manager.person.id)
    digest = next(m for m in sent if m["text"].startswith("🗂 Awaiting your review"))
    assert labels(digest) == ["1. 🔎 Review: Erste AG", "2. 🔎 Review: Zweite AG"]
    assert [d for _, d in buttons(digest)] == [f"rv:o:{review_one}", f"rv:o:{review_two}"]
    await manager.person.press("2. 🔎 Review", digest)
    assert "Zweite AG" in last_of(world, manager)["text"]


async def test_a_stale_record_is_confirmed_in_one_tap(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI)
    stale = await add_customer(world, owner, "老客户", approved_at=utc(2026, 1, 1))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    message = last_of(world, owner)
    assert labels(message)[0] == "👍 资料仍准确"
    await owner.person.press("👍", message)
    assert (await customer_row(world, stale)).last_checked_at == utc(2026, 11, 21, 1, 0)


async def test_every_kind_a_person_acts_on_is_offered_an_action(world: World, clock: Clock) -> None:
    """The registry's kinds about a customer all name a first action (weekly, audit head and
    backup tell and ask nothing)."""
    from bot.reminder_text import primary
    from storage.reminders import Notice

    informational = {Kind.weekly, Kind.audit_head, Kind.backup, Kind.retention}
    for kind in Kind:
        if kind in informational or kind == Kind.review_digest:
            continue
        acts = {
            Kind.followup: ("visit", "done", "snooze", "reschedule"),
            Kind.complaint_soon: ("take", "open_complaint"),
            Kind.complaint_overdue: ("resolve", "open_complaint"),
            Kind.birthday: ("key_persons",),
            Kind.stale: ("confirm", "snooze"),
            Kind.survey: ("done", "snooze"),
            Kind.pool_released: ("claim",),
        }.get(kind, ("open",))
        notice = Notice(
            1, kind, {"customer": "X"}, acts, customer_id=2, review_id=3, complaint_id=4
        )
        assert primary(notice) is not None, kind


async def test_a_customer_reassigned_since_leaves_the_reminder_buttons_harmless(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    other = await member(world, timezone=SHANGHAI, name="Zhao")
    customer = await add_customer(world, owner, "移交公司", next_followup_on=date(2026, 11, 21))
    await add_customer(world, owner, "留下公司", next_followup_on=date(2026, 11, 21))
    clock.set(MORNING)
    await tick(world)
    grouped = last_of(world, owner)
    async with unit_of_work(world.services.sessions) as session:
        found = await session.get(Customer, customer)
        assert found is not None
        found.owner_id = other.staff_id
        session.add(found)
    await owner.person.press("1. ✅", grouped)
    assert owner.person.last_answer() == NOT_FOUND  # no longer theirs to see
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 21)
    async with unit_of_work(world.services.sessions) as session:
        acted = (
            await session.exec(select(Reminder.acted).where(col(Reminder.subject_id) == customer))
        ).all()
    assert set(acted) == {None}
