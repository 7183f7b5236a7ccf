"""The "complete this record" reminder (issue 13): a customer saved with its essentials only
reminds its owner once, on the next working morning after it can be edited, with a one-tap
button that starts completing it; not when it was completed meanwhile, never twice."""

from __future__ import annotations

from sqlmodel import select

from storage.db import unit_of_work
from storage.models import Customer, Reminder
from storage.reminders import Kind
from tests.auxil.fake_telegram import buttons
from tests.auxil.flow_helpers import question
from tests.auxil.world import World
from tests.conversations.test_reminders import (  # noqa: F401 (fixtures)
    Clock,
    clock,
    fake_pacing,
    member,
    pacing,
    services,
    settings,
    texts,
    tick,
    utc,
)


def the_clock(world: World) -> Clock:
    found = world.services.clock
    assert isinstance(found, Clock)
    return found


async def saved_now(world: World, who) -> int:  # type: ignore[no-untyped-def]
    person = who.person
    await person.send("/new")
    await person.press("企业")
    await person.send("杭州明远机械有限公司")
    await person.send("13812345678")
    await person.press("B 重要")
    await person.press("黄苹果")
    await person.press("拜访")
    await person.press("现在保存")
    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer))).one()
    assert customer.id is not None
    return customer.id


async def decide(world: World, customer_id: int, status: str, **values: object) -> None:
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        customer.status = status
        for name, value in values.items():
            setattr(customer, name, value)
        session.add(customer)


async def complete_rows(world: World) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        found = await session.exec(select(Reminder).where(Reminder.kind == Kind.complete))
        return list(found.all())


def reminded(world: World, who) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for t in texts(world, who) if "只保存了基本信息" in t or "essentials only" in t]


async def test_reminded_once_when_editable_and_one_tap_starts_completing(
    world: World,
) -> None:
    now = the_clock(world)
    li = await member(world)
    customer_id = await saved_now(world, li)
    await tick(world)
    assert await complete_rows(world) == []  # pending: its manager decides first
    await decide(world, customer_id, "approved", approved_at=now.now)
    await tick(world)
    [row] = await complete_rows(world)
    assert row.recipient_id == li.staff_id and row.dedup_key.endswith(":once")
    now.advance(hours=3)
    await tick(world)
    [text] = reminded(world, li)
    assert "杭州明远机械有限公司" in text
    message = next(m for m in world.telegram.sent_to(li.person.id) if m.get("text") == text)
    assert ("📝 补全档案", f"cm:{customer_id}") in buttons(message)
    await li.person.press("补全档案", message)
    assert question(li.person) == "新的简称?"  # the first field it lacks
    for _ in range(3):
        now.advance(days=1)
        await tick(world)
    assert len(reminded(world, li)) == 1  # once
    assert len(await complete_rows(world)) == 1


async def test_not_sent_when_completed_meanwhile(world: World) -> None:
    now = the_clock(world)
    li = await member(world, language="en")
    customer_id = await saved_now_en(world, li)
    await decide(world, customer_id, "rejected")
    await tick(world)
    assert len(await complete_rows(world)) == 1
    await decide(
        world, customer_id, "rejected", industry="Machinery", region="Zhejiang", consent_given=True
    )
    now.advance(hours=3)
    await tick(world)
    assert reminded(world, li) == []


async def test_a_deactivated_owner_or_a_reassigned_record_is_not_reminded(
    world: World,
) -> None:
    now = the_clock(world)
    li = await member(world)
    zhao = await member(world, name="Zhao")
    customer_id = await saved_now(world, li)
    await decide(world, customer_id, "approved", approved_at=now.now)
    await tick(world)
    await decide(world, customer_id, "approved", owner_id=zhao.staff_id)
    now.advance(hours=3)
    await tick(world)
    assert reminded(world, li) == [] and reminded(world, zhao) == []


async def saved_now_en(world: World, who) -> int:  # type: ignore[no-untyped-def]
    person = who.person
    await person.send("/new")
    await person.press("Company")
    await person.send("Mingyuan Machinery")
    await person.press("Skip")
    await person.press("B important")
    await person.press("Yellow apple")
    await person.press("Visit")
    await person.press("Save now")
    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer))).one()
    assert customer.id is not None
    return customer.id


async def test_a_record_entered_in_full_is_not_reminded(world: World) -> None:
    """Only "save now" marks a record for the reminder: one walked to its summary, even with
    details skipped, was the salesperson's choice."""
    now = the_clock(world)
    li = await member(world)
    person = li.person
    await person.send("/new")
    await person.press("企业")
    await person.send("杭州明远机械有限公司")
    await person.press("跳过其余")
    await person.press("B 重要")
    await person.press("黄苹果")
    await person.press("拜访")
    await person.press("继续填写")
    await person.press("提交")
    async with unit_of_work(world.services.sessions) as session:
        customer = (await session.exec(select(Customer))).one()
    assert customer.id is not None
    await decide(world, customer.id, "approved", approved_at=now.now)
    await tick(world)
    now.advance(hours=3)
    await tick(world)
    assert await complete_rows(world) == [] and reminded(world, li) == []
