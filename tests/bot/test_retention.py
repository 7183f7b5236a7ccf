"""Retention (issue 11, item 5): archived customers older than RETENTION_YEARS are proposed to
each admin once a month, in one message with a destroy-request button per customer; nothing is
destroyed by the proposal, and a customer reactivated or destroyed meanwhile is not proposed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlmodel import col, select

from bot import scheduler
from bot.context import Services
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import reminders as store
from storage.crypto import Keyring
from storage.db import SessionFactory, reading, unit_of_work
from storage.models import Customer, RecordStatus, Reminder, Review, Staff
from storage.reminders.retention import cutoff
from tests.auxil.customer_factory import add_customer, set_columns
from tests.auxil.fake_telegram import TOKEN, buttons
from tests.auxil.world import ADMIN_ID, World, start_app
from tests.conversations.test_reminders import Clock, FakeTime, member, tick, utc

START = utc(2026, 11, 20, 0, 0)  # Friday, 08:00 in Shanghai; DIGEST_HOUR is 9


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        WEEKLY_SUMMARY_WEEKDAY=3,
        AUDIT_HEAD_DAYS=0,
        POOL_AFTER_DAYS="off",
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return _settings(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def services(
    settings: Settings, session_factory: SessionFactory, keyring: Keyring, clock: Clock
) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=clock)


@pytest.fixture(autouse=True)
def fake_pacing(world: World) -> Iterator[None]:
    pacing = FakeTime()
    world.app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))
    yield


def proposals(world: World, chat_id: int = ADMIN_ID) -> list[dict]:
    return [m for m in world.telegram.sent_to(chat_id) if str(m.get("text", "")).startswith("🗄")]


async def archived(world: World, owner: int, name: str, at: datetime, **columns: object) -> int:
    customer = await add_customer(world.services.sessions, world.services.keyring, owner, name)
    await set_columns(
        world.services.sessions,
        customer.id or 0,
        status=columns.pop("status", RecordStatus.archived),
        archived_at=at,
        **columns,
    )
    async with unit_of_work(world.services.sessions) as session:  # its creation long approved
        for review in (
            await session.exec(select(Review).where(Review.customer_id == customer.id))
        ).all():
            review.status = "approved"
            session.add(review)
    return customer.id or 0


async def numbers(world: World, *ids: int) -> list[str]:
    async with reading(world.services.sessions) as session:
        rows = await session.exec(select(Customer).where(col(Customer.id).in_(ids)))
        by_id = {c.id: c.customer_no for c in rows.all()}
    return [by_id[i] for i in ids]


async def test_admins_get_one_proposal_a_month_and_nothing_is_destroyed(
    world: World, clock: Clock
) -> None:
    english = await member(world, "admin", team=None, language="en", name="Ada")
    manager = await member(world, "manager", name="Zhou")
    seller = await member(world, name="Wang")
    old = await archived(world, seller.person.id, "杭州老客户有限公司", utc(2022, 6, 1))
    recent = await archived(world, seller.person.id, "杭州新归档有限公司", utc(2025, 6, 1))
    back = await archived(
        world, seller.person.id, "杭州已恢复有限公司", utc(2021, 1, 1), status="approved"
    )
    gone = await archived(
        world, seller.person.id, "KH-gone", utc(2021, 1, 1), status=RecordStatus.destroyed
    )
    old_no, recent_no, back_no, gone_no = await numbers(world, old, recent, back, gone)

    clock.set(utc(2026, 11, 20, 0, 59))  # 08:59: before the digest hour
    await tick(world)
    assert proposals(world) == []
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    [zh] = proposals(world)
    [en] = proposals(world, english.person.id)
    text = zh["text"]
    assert "有 1 个客户归档已超过 3 年" in text and old_no in text and "2022-06-01" in text
    assert all(n not in text for n in (recent_no, back_no, gone_no))
    assert buttons(zh) == [(f"🗑 销毁 {old_no}…", f"ar:d:{old}")]
    assert "archived more than 3 years ago" in en["text"]
    assert proposals(world, manager.person.id) == [] and proposals(world, seller.person.id) == []
    async with reading(world.services.sessions) as session:
        customer = await session.get(Customer, old)
        assert customer is not None and customer.status == RecordStatus.archived
        assert (await session.exec(select(Review).where(Review.kind == "destroy"))).all() == []

    # later the same month, after a restart, on two instances at once: nothing new
    clock.advance(days=9)
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    world.app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=FakeTime().sleep))
    await tick(world)
    rules = store.Rules.from_settings(world.services.settings)
    await asyncio.gather(
        *(
            store.plan(
                world.services.sessions,
                keyring=world.services.keyring,
                rules=rules,
                now=clock(),
                only=["retention"],
            )
            for _ in range(2)
        )
    )
    assert len(proposals(world)) == 1
    async with reading(world.services.sessions) as session:
        planned = (await session.exec(select(Reminder).where(Reminder.kind == "retention"))).all()
    assert len(planned) == 2  # one per admin

    clock.set(utc(2026, 12, 1, 1, 0))  # a new month
    await tick(world)
    assert len(proposals(world)) == 2


async def test_a_customer_reactivated_or_destroyed_before_delivery_is_not_proposed(
    world: World, clock: Clock
) -> None:
    seller = await member(world, name="Wang")
    async with unit_of_work(world.services.sessions) as session:
        admin = (await session.exec(select(Staff).where(Staff.telegram_id == ADMIN_ID))).one()
        admin.quiet_hours = "8-12"  # the digest hour falls in the admin's quiet hours
        session.add(admin)
    first = await archived(world, seller.person.id, "杭州甲有限公司", utc(2022, 1, 1))
    second = await archived(world, seller.person.id, "杭州乙有限公司", utc(2022, 2, 1))
    third = await archived(world, seller.person.id, "杭州丙有限公司", utc(2022, 3, 1))
    first_no, second_no, third_no = await numbers(world, first, second, third)
    clock.set(utc(2026, 11, 20, 1, 0))  # 09:00, quiet until 12:00
    await tick(world)
    assert proposals(world) == []
    await set_columns(world.services.sessions, first, status="approved", archived_at=None)
    await set_columns(world.services.sessions, second, status=RecordStatus.destroyed)
    clock.set(utc(2026, 11, 20, 4, 0))  # 12:00
    await tick(world)
    [message] = proposals(world)
    assert third_no in message["text"] and "有 1 个客户" in message["text"]
    assert first_no not in message["text"] and second_no not in message["text"]
    assert buttons(message) == [(f"🗑 销毁 {third_no}…", f"ar:d:{third}")]


async def test_with_nothing_left_to_propose_the_message_is_not_sent(
    world: World, clock: Clock
) -> None:
    seller = await member(world, name="Wang")
    only = await archived(world, seller.person.id, "杭州甲有限公司", utc(2022, 1, 1))
    async with unit_of_work(world.services.sessions) as session:
        admin = (await session.exec(select(Staff).where(Staff.telegram_id == ADMIN_ID))).one()
        admin.quiet_hours = "8-12"
        session.add(admin)
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    await set_columns(world.services.sessions, only, status="approved", archived_at=None)
    clock.set(utc(2026, 11, 20, 4, 0))
    await tick(world)
    assert proposals(world) == []
    async with reading(world.services.sessions) as session:
        [row] = (await session.exec(select(Reminder).where(Reminder.kind == "retention"))).all()
    assert row.status == "cancelled"


async def test_many_long_named_customers_fit_one_message(world: World, clock: Clock) -> None:
    seller = await member(world, name="Wang")
    for n in range(45):
        await archived(world, seller.person.id, f"{'长' * 190}{n:03d}", utc(2021, 1, 1 + n % 28))
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    [message] = proposals(world)
    assert len(message["text"]) <= 4096
    # issue 13: names whole (193 characters each), so 15 of the 20 listed fit, the rest counted
    assert "有 45 个客户" in message["text"] and "另有 30 个" in message["text"]
    assert message["text"].count(f"{'长' * 190}0") == 15  # each whole
    assert "/find" in message["text"]
    assert len(buttons(message)) == 15
    assert all(d.startswith("ar:d:") and len(d.encode()) <= 64 for _, d in buttons(message))


@pytest.mark.parametrize("settings", [{"RETENTION_YEARS": "off"}], indirect=True)
async def test_off_proposes_nothing(world: World, clock: Clock) -> None:
    seller = await member(world, name="Wang")
    await archived(world, seller.person.id, "杭州甲有限公司", utc(2010, 1, 1))
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    assert proposals(world) == []


def test_retention_years_setting(tmp_path: Path) -> None:
    assert _settings(tmp_path).RETENTION_YEARS == 3
    assert _settings(tmp_path, RETENTION_YEARS="7").RETENTION_YEARS == 7
    assert _settings(tmp_path, RETENTION_YEARS=" OFF ").RETENTION_YEARS is None
    for bad in ("0", "three", "-1", "2.5", "101"):
        with pytest.raises(ValidationError) as error:
            _settings(tmp_path, RETENTION_YEARS=bad)
        assert "whole number of years from 1 to 100 after archiving, or off" in str(error.value)


def test_the_cutoff_is_whole_years_back() -> None:
    assert cutoff(utc(2026, 11, 20, 1, 0), 3) == utc(2023, 11, 20, 1, 0)
    assert cutoff(utc(2028, 2, 29, 0, 0), 1) == utc(2027, 2, 28, 0, 0)


async def test_a_proposal_button_files_a_destruction_that_a_second_person_approves(
    world: World, clock: Clock
) -> None:
    """The proposal's button leads to the destroy request (reason, confirmation); the customer
    is destroyed only once another person approves it, never by the proposal or its admin."""
    manager = await member(world, "manager", name="Zhou")
    seller = await member(world, name="Wang")
    old = await archived(world, seller.person.id, "杭州老客户有限公司", utc(2022, 6, 1))
    [number] = await numbers(world, old)
    admin = world.admin()
    await admin.send("/start")
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    [proposal] = proposals(world)

    await admin.press_data(proposal, f"ar:d:{old}")
    assert f"为什么要销毁 {number}" in admin.last_text()
    await admin.send("归档已满三年,按保存期限销毁")
    await admin.press("确认,提交销毁申请")
    async with reading(world.services.sessions) as session:
        [review] = (await session.exec(select(Review).where(Review.kind == "destroy"))).all()
        customer = await session.get(Customer, old)
    assert review.status == "pending" and review.submitted_by is not None
    assert review.request_reason == "归档已满三年,按保存期限销毁"
    assert customer is not None and customer.status == RecordStatus.archived

    await admin.press_data(proposal, f"rv:a:{review.id}")  # the requester may not approve it
    async with reading(world.services.sessions) as session:
        assert (await session.get(Review, review.id)).status == "pending"  # type: ignore[union-attr]
    await manager.person.press_data(proposal, f"rv:a:{review.id}")
    async with reading(world.services.sessions) as session:
        customer = await session.get(Customer, old)
        decided = await session.get(Review, review.id)
    assert customer is not None and customer.status == RecordStatus.destroyed
    assert customer.name == number
    assert decided is not None and decided.decided_by == manager.staff_id
