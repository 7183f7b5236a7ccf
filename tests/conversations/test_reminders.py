"""Reminders through the bot's surface: the clock moves, the scheduler ticks, people press.

Time never passes by sleeping: `clock` is the one source of time (services.clock), each test
sets it and calls `scheduler.run_once` the way the job would. The pacer's sleeping is faked too
(it only spaces messages; it never decides what is due).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot import metrics, scheduler
from bot.context import Services
from bot.i18n import translate
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import reminders as store
from storage import vault
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import (
    AuditEntry,
    ChangeRecord,
    Complaint,
    Customer,
    KeyPerson,
    Reminder,
    ReminderPlanRun,
    Review,
    Staff,
    Visit,
)
from storage.reminders import Kind
from tests.auxil.fake_telegram import TOKEN, FakeTelegram, Person, buttons
from tests.auxil.flow_helpers import audit_actions
from tests.auxil.world import ADMIN_ID, World, start_app

SHANGHAI = "Asia/Shanghai"  # UTC+8 all year (no DST)
BERLIN = "Europe/Berlin"  # UTC+1 in winter, +2 in summer
NEW_YORK = "America/New_York"  # UTC-5 / -4
KOLKATA = "Asia/Kolkata"  # UTC+05:30, a half-hour offset, no DST
FIXED = "Etc/GMT+5"  # a bare UTC offset (UTC-5), no DST
NOT_FOUND = translate("zh", "refused.not_found")


class Clock:
    """The one clock of the bot under test; tests move it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeTime:
    """Monotonic time for the pacer that moves only when it 'sleeps'."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        # the tests run from Friday 20 November 2026 on: a Wednesday summary (18th, 25th) stays
        # out of every test but the weekly one
        WEEKLY_SUMMARY_WEEKDAY=3,
        AUDIT_HEAD_DAYS=0,  # the admins' audit head is tested in test_audit_head.py
        POOL_AFTER_DAYS="off",  # the team pool is tested in test_pool.py
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 20, 0, 0))


@pytest.fixture
def services(
    settings: Settings, session_factory: SessionFactory, keyring: Keyring, clock: Clock
) -> Services:
    return Services(settings=settings, sessions=session_factory, keyring=keyring, clock=clock)


@pytest.fixture
def pacing() -> FakeTime:
    return FakeTime()


@pytest.fixture(autouse=True)
def fake_pacing(world: World, pacing: FakeTime) -> Iterator[None]:
    world.app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))
    yield


# ---------------------------------------------------------------------------------------------
# building the company's records directly (the flows that make them are tested elsewhere)

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def fresh_numbers() -> None:
    global _numbers
    _numbers = itertools.count(1)


@dataclass
class Member:
    person: Person
    staff_id: int


async def member(
    world: World,
    role: str = "salesperson",
    team: str | None = "East",
    *,
    timezone: str | None = None,
    quiet_hours: str | None = None,
    language: str = "zh",
    name: str = "Li",
) -> Member:
    person = await world.member(role, team, name=name, language=language)
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == person.id))).one()
        staff.timezone, staff.quiet_hours, staff.language = timezone, quiet_hours, language
        session.add(staff)
    assert staff.id is not None
    return Member(person, staff.id)


async def add_customer(
    world: World,
    owner: Member,
    name: str = "明远机械",
    *,
    status: str = "approved",
    next_followup_on: date | None = None,
    last_visit_on: date | None = None,
    customer_class: str = "C",
    approved_at: datetime | None = None,
    last_checked_at: datetime | None = None,
) -> int:
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, owner.staff_id)
        assert staff is not None
        customer = Customer(
            customer_no=f"KH-2026-{next(_numbers):06d}",
            kind="company",
            name=name,
            owner_id=owner.staff_id,
            team_id=staff.team_id,
            status=status,
            customer_class=customer_class,
            next_followup_on=next_followup_on,
            last_visit_on=last_visit_on,
            approved_at=approved_at or (utc(2026, 10, 1, 3) if status == "approved" else None),
            last_checked_at=last_checked_at,
            created_at=utc(2026, 1, 1),
        )
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        await vault.create_data_key(session, world.services.keyring, customer.id)
        return customer.id


async def tick(world: World) -> scheduler.Tick:
    return await scheduler.run_once(world.app)


def texts(world: World, who: Member) -> list[str]:
    """The texts sent to someone (the weekly chart, a photo, is not one: see `photos`)."""
    sent = world.telegram.sent_to(who.person.id)
    return [str(m.get("text", "")) for m in sent if "photo" not in m]


def photos(world: World, who: Member) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(who.person.id) if "photo" in m]


async def rows(world: World, **where: Any) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        query = select(Reminder).order_by(col(Reminder.id))
        for name, value in where.items():
            query = query.where(getattr(Reminder, name) == value)
        return list((await session.exec(query)).all())


async def customer_row(world: World, customer_id: int) -> Customer:
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return customer


def send_count(world: World) -> int:
    return sum(1 for name, _ in world.telegram.calls if name == "sendMessage")


async def add_review(
    world: World,
    customer_id: int,
    submitter: Member,
    *,
    submitted_at: datetime,
    status: str = "pending",
    decided_at: datetime | None = None,
    reason: str | None = None,
    kind: str = "customer_new",
) -> int:
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        review = Review(
            kind=kind,
            status=status,
            customer_id=customer_id,
            team_id=customer.team_id,
            submitted_by=submitter.staff_id,
            submitted_at=submitted_at,
            decided_at=decided_at,
            reason=reason,
        )
        session.add(review)
        await session.flush()
        assert review.id is not None
        return review.id


async def add_complaint(
    world: World,
    customer_id: int,
    handler: Member,
    *,
    received_at: datetime,
    hours: int,
    severity: str = "high",
    status: str = "open",
) -> int:
    async with unit_of_work(world.services.sessions) as session:
        complaint = Complaint(
            complaint_no=f"TS-2026-{next(_numbers):06d}",
            customer_id=customer_id,
            received_by=handler.staff_id,
            received_at=received_at,
            type="delivery",
            severity=severity,
            description="late delivery",
            handler_id=handler.staff_id,
            status=status,
            due_at=received_at + timedelta(hours=hours),
        )
        session.add(complaint)
        await session.flush()
        assert complaint.id is not None
        return complaint.id


async def add_key_person(world: World, customer_id: int, name: str, birthday: str) -> int:
    async with unit_of_work(world.services.sessions) as session:
        person = KeyPerson(customer_id=customer_id, name=name)
        session.add(person)
        await session.flush()
        assert person.id is not None
        key = await vault.data_key(session, world.services.keyring, customer_id)
        sealed = {"birthday": birthday, "phones": ["+8613812345678"]}
        person.sealed = vault.seal(key, sealed, table="key_persons", row_id=person.id)
        session.add(person)
        return person.id


async def change_customer(world: World, customer_id: int, **values: Any) -> None:
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        for name, value in values.items():
            setattr(customer, name, value)
        session.add(customer)


def last_of(world: World, who: Member) -> dict[str, Any]:
    return world.telegram.sent_to(who.person.id)[-1]


def labels(message: dict[str, Any]) -> list[str]:
    return [text for text, _ in buttons(message)]


# ---------------------------------------------------------------------------------------------
# follow-ups: the right day, at the owner's hour, in the owner's time zone


async def test_a_follow_up_arrives_at_nine_in_each_owners_own_time_zone(
    world: World, clock: Clock
) -> None:
    shanghai = await member(world, timezone=SHANGHAI, name="Wang")
    new_york = await member(world, timezone=NEW_YORK, name="Smith", language="en")
    day = date(2026, 11, 23)
    await add_customer(world, shanghai, "上海明远机械", next_followup_on=day)
    await add_customer(world, new_york, "Hudson Tools", next_followup_on=day)

    clock.set(utc(2026, 11, 22, 23, 0))  # 07:00 in Shanghai, 18:00 the day before in New York
    await tick(world)
    assert texts(world, shanghai) == [] and texts(world, new_york) == []

    clock.set(utc(2026, 11, 23, 1, 0))  # 09:00 in Shanghai
    await tick(world)
    assert texts(world, shanghai) == ["📞 今天该跟进：上海明远机械（KH-2026-000001）"]
    assert texts(world, new_york) == []

    clock.set(utc(2026, 11, 23, 13, 59))  # 08:59 in New York (EST, UTC-5)
    await tick(world)
    assert texts(world, new_york) == []
    clock.set(utc(2026, 11, 23, 14, 0))
    await tick(world)
    assert texts(world, new_york) == ["📞 Follow-up due today: Hudson Tools (KH-2026-000002)"]
    assert len(texts(world, shanghai)) == 1  # nothing twice
    sent = await rows(world, kind=Kind.followup)
    assert [r.status for r in sent] == ["sent", "sent"]
    assert all(r.chat_id and r.message_id for r in sent)
    labels_ = labels(last_of(world, new_york))
    assert labels_ == [
        "📝 Log visit",
        "✅ Done",
        "⏰ Snooze 1 day",
        "⏰ Snooze 3 days",
        "📅 Reschedule",
        "📇 Card",
    ]
    assert buttons(last_of(world, new_york))[0][1].startswith("cv:")


@pytest.mark.parametrize(
    ("zone_name", "day", "nine_local_in_utc"),
    [
        (SHANGHAI, date(2026, 11, 24), utc(2026, 11, 24, 1, 0)),  # no DST
        (BERLIN, date(2026, 11, 24), utc(2026, 11, 24, 8, 0)),  # winter time
        (BERLIN, date(2027, 7, 6), utc(2027, 7, 6, 7, 0)),  # summer time
        (NEW_YORK, date(2027, 3, 12), utc(2027, 3, 12, 14, 0)),  # the Friday before DST
        (NEW_YORK, date(2027, 3, 15), utc(2027, 3, 15, 13, 0)),  # the Monday after
        (KOLKATA, date(2026, 11, 24), utc(2026, 11, 24, 3, 30)),  # a half-hour offset
        (FIXED, date(2026, 11, 24), utc(2026, 11, 24, 14, 0)),  # a bare UTC-5
    ],
)
async def test_the_follow_up_hour_is_local_in_every_kind_of_time_zone(
    world: World, clock: Clock, zone_name: str, day: date, nine_local_in_utc: datetime
) -> None:
    owner = await member(world, timezone=zone_name)
    await add_customer(
        world, owner, next_followup_on=day, approved_at=nine_local_in_utc - timedelta(days=30)
    )
    clock.set(nine_local_in_utc - timedelta(hours=20))
    await tick(world)  # planned ahead, not sent
    assert [r.status for r in await rows(world)] == ["pending"]
    clock.set(nine_local_in_utc - timedelta(minutes=1))
    await tick(world)
    assert texts(world, owner) == []
    clock.set(nine_local_in_utc)
    await tick(world)
    assert len(texts(world, owner)) == 1


async def test_a_follow_up_from_the_class_cycle_after_the_last_visit(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=BERLIN)
    # class A: 7 days after the visit on 16 November → due 23 November
    await add_customer(
        world, owner, "Cycle GmbH", customer_class="A", last_visit_on=date(2026, 11, 16)
    )
    clock.set(utc(2026, 11, 23, 7, 59))
    await tick(world)
    assert texts(world, owner) == []
    clock.set(utc(2026, 11, 23, 8, 0))
    await tick(world)
    assert texts(world, owner) == ["📞 今天该跟进：Cycle GmbH（KH-2026-000001）"]


async def test_a_visit_logged_before_the_hour_cancels_the_planned_reminder(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 20, 23, 30))  # 07:30 local: planned, waiting for 09:00
    await tick(world)
    assert [r.status for r in await rows(world)] == ["pending"]
    await change_customer(
        world, customer, last_visit_on=date(2026, 11, 21), next_followup_on=date(2026, 12, 21)
    )
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    assert texts(world, owner) == []
    assert [(r.status, r.last_error) for r in await rows(world)] == [("cancelled", "no longer due")]


async def test_log_visit_opens_the_visit_flow_and_a_logged_visit_ends_the_reminders(
    world: World, clock: Clock
) -> None:
    from storage.visits import log_visit

    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    customer = await add_customer(world, owner, "拜访公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    assert buttons(last_of(world, owner))[0] == ("📝 记录拜访", f"cv:{customer}")
    await owner.person.press("记录拜访")
    assert texts(world, owner)[-1].startswith("📝 拜访记录")  # the visit flow, customer given
    await owner.person.send("/cancel")
    clock.set(utc(2026, 11, 22, 3, 0))
    async with unit_of_work(world.services.sessions) as session:  # the visit flow's own save
        staff = await session.get(Staff, owner.staff_id)
        assert staff is not None
        await log_visit(
            session, keyring=world.services.keyring, actor=staff, customer_id=customer,
            values={"kind": "phone"}, now=clock(), timezone=SHANGHAI,
            followup_cycles=world.services.settings.followup_cycles,
        )  # fmt: skip
    for day in range(22, 27):
        clock.set(utc(2026, 11, day, 1, 0))
        await tick(world)
    assert not any("⚠️" in text for text in texts(world, manager))  # the follow-up happened
    assert len(texts(world, owner)) == 3  # the reminder, the visit flow's question, /cancel


# ---------------------------------------------------------------------------------------------
# escalation to the managers


async def test_a_follow_up_overdue_by_three_days_reaches_each_manager_in_a_morning_digest(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    manager_sh = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    manager_de = await member(world, "manager", timezone=BERLIN, name="Weber", language="en")
    other_team = await member(world, "manager", team="West", timezone=SHANGHAI, name="Qian")
    first = await add_customer(world, owner, "甲公司", next_followup_on=date(2026, 11, 20))
    await add_customer(world, owner, "乙公司", next_followup_on=date(2026, 11, 20))
    visited = await add_customer(world, owner, "丙公司", next_followup_on=date(2026, 11, 20))

    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)  # the owner's own reminders
    assert texts(world, owner)[0].startswith("🔔 3 条提醒")
    await change_customer(world, visited, last_visit_on=date(2026, 11, 21))

    clock.set(utc(2026, 11, 23, 0, 59))
    await tick(world)
    assert texts(world, manager_sh) == []
    clock.set(utc(2026, 11, 23, 1, 0))  # 09:00 in Shanghai, three days after
    await tick(world)
    # one digest row per manager and day (issue 14), its customers listed at delivery
    [digest] = texts(world, manager_sh)
    assert digest.startswith("⚠️ 团队跟进已逾期 3 天（原定 2026-11-20）：共 2 位客户")
    assert "1. 甲公司（KH-2026-000001），Wang 的客户" in digest
    assert "乙公司" in digest and "丙公司" not in digest
    assert texts(world, manager_de) == [] and texts(world, other_team) == []
    clock.set(utc(2026, 11, 23, 8, 0))  # 09:00 in Berlin
    await tick(world)
    [digest_de] = texts(world, manager_de)
    assert digest_de.startswith("⚠️ Follow-ups 3 days overdue in your teams (due 2026-11-20): 2")
    assert "1. 甲公司 (KH-2026-000001), Wang's customer" in digest_de
    assert texts(world, other_team) == []
    escalated = await rows(world, kind=Kind.overdue)
    assert sorted((r.subject_type, r.subject_id) for r in escalated) == sorted(
        ("staff", m.staff_id) for m in (manager_sh, manager_de)
    )
    assert first  # listed by name above


# ---------------------------------------------------------------------------------------------
# reviews: a reminder after a day, and a digest every morning


async def test_a_pending_review_reminds_its_deciders_after_a_day_and_in_a_morning_digest(
    world: World, clock: Clock
) -> None:
    submitter = await member(world, timezone=SHANGHAI, name="Wang")
    manager_sh = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    manager_de = await member(world, "manager", timezone=BERLIN, name="Weber", language="en")
    customer = await add_customer(world, submitter, "待审公司", status="pending")
    review = await add_review(world, customer, submitter, submitted_at=utc(2026, 11, 20, 3, 0))

    clock.set(utc(2026, 11, 20, 3, 0))
    await tick(world)
    assert texts(world, manager_sh) == [] and texts(world, manager_de) == []
    clock.set(utc(2026, 11, 20, 8, 0))  # 09:00 in Berlin: the review already waited
    await tick(world)
    assert texts(world, manager_de) == [
        "🗂 Awaiting your review: 1\n"
        "1. New customer: KH-2026-000001 · 待审公司 (Wang, 2026-11-20 04:00)"
    ]
    assert texts(world, manager_sh) == []  # it came after Shanghai's 09:00
    clock.set(utc(2026, 11, 21, 1, 0))  # 09:00 in Shanghai the next day
    await tick(world)
    assert texts(world, manager_sh)[0].startswith("🗂 待审核汇总：共 1 项")

    clock.set(utc(2026, 11, 21, 3, 0))  # 24 hours: 11:00 in Shanghai, 04:00 (quiet) in Berlin
    await tick(world)
    reminder = texts(world, manager_sh)[-1]
    assert reminder == "🗂 新客户待审核已 24 小时：KH-2026-000001 · 待审公司，提交人 Wang"
    assert buttons(last_of(world, manager_sh)) == [
        ("✅ 通过", f"rv:a:{review}"),
        ("❌ 退回", f"rv:r:{review}"),
        ("🔎 查看详情", f"rv:o:{review}"),
    ]
    assert len(texts(world, manager_de)) == 1
    held = await rows(world, kind=Kind.review, recipient_id=manager_de.staff_id)
    assert held[0].next_attempt_at == utc(2026, 11, 21, 7, 0)  # 08:00 in Berlin
    assert texts(world, submitter) == []  # never the submitter

    async with unit_of_work(world.services.sessions) as session:  # decided meanwhile
        row = await session.get(Review, review)
        assert row is not None
        row.status, row.decided_at = "approved", utc(2026, 11, 21, 6, 0)
        session.add(row)
    clock.set(utc(2026, 11, 21, 7, 0))
    await tick(world)
    assert len(texts(world, manager_de)) == 1
    assert [r.status for r in await rows(world, kind=Kind.review)] == ["sent", "cancelled"]


async def test_approve_on_a_review_reminder_decides_it_through_the_review_module(
    world: World, clock: Clock
) -> None:
    submitter = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    customer = await add_customer(world, submitter, "审批公司", status="pending")
    review = await add_review(world, customer, submitter, submitted_at=utc(2026, 11, 20, 3, 0))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)  # the morning digest
    clock.set(utc(2026, 11, 21, 3, 0))
    await tick(world)  # a day after the submission
    assert buttons(last_of(world, manager))[0] == ("✅ 通过", f"rv:a:{review}")
    await manager.person.press("通过")
    async with unit_of_work(world.services.sessions) as session:
        decided = await session.get(Review, review)
        assert decided is not None and (decided.status, decided.decided_by) == (
            "approved", manager.staff_id
        )  # fmt: skip
    assert (await customer_row(world, customer)).status == "approved"
    clock.advance(days=1)
    await tick(world)  # nothing pending: no digest, no reminder
    assert not any(text.startswith("🗂") for text in texts(world, manager)[2:])


async def test_a_rejection_not_resubmitted_after_three_days_reminds_the_submitter(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")
    anna = await member(world, timezone=BERLIN, name="Anna", language="en")
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    decided = utc(2026, 11, 20, 2, 0)
    mine = await add_customer(world, wang, "退回公司", status="rejected")
    await add_review(
        world, mine, wang, submitted_at=utc(2026, 11, 19), status="rejected",
        decided_at=decided, reason="缺少税号",
    )  # fmt: skip
    hers = await add_customer(world, anna, "Back GmbH", status="rejected")
    await add_review(
        world, hers, anna, submitted_at=utc(2026, 11, 19), status="rejected",
        decided_at=decided, reason="no address",
    )  # fmt: skip
    fixed = await add_customer(world, wang, "已改公司", status="pending")
    await add_review(
        world, fixed, wang, submitted_at=utc(2026, 11, 19), status="rejected",
        decided_at=decided, reason="x",
    )  # fmt: skip
    await add_review(world, fixed, wang, submitted_at=utc(2026, 11, 21))  # resubmitted

    clock.set(utc(2026, 11, 23, 1, 59))
    await tick(world)
    assert texts(world, wang) == []
    clock.set(utc(2026, 11, 23, 2, 0))  # 10:00 in Shanghai, 03:00 (quiet) in Berlin
    await tick(world)
    [text] = texts(world, wang)
    assert (
        text
        == "↩️ 退回公司（KH-2026-000001）的新客户被退回已 3 天，还没有重新提交。退回原因：缺少税号"
    )
    assert labels(last_of(world, wang)) == [
        "↩️ 重新提交",
        "✅ 已完成",
        "⏰ 明天再提醒",
        "⏰ 3 天后再提醒",
        "📇 档案",
    ]
    assert buttons(last_of(world, wang))[0][1] == f"rv:rs:{mine}"
    assert texts(world, anna) == []
    clock.set(utc(2026, 11, 23, 7, 0))  # 08:00 in Berlin
    await tick(world)
    assert texts(world, anna)[0].startswith("↩️ New customer for Back GmbH")
    assert not any(text.startswith("↩️") for text in texts(world, manager))
    assert len(await rows(world, kind=Kind.rejected)) == 2  # none for the resubmitted one


# ---------------------------------------------------------------------------------------------
# complaints, birthdays, records to re-check, surveys, the weekly summary


async def test_a_complaint_near_and_past_its_due_time_reaches_handler_and_manager(
    world: World, clock: Clock
) -> None:
    handler = await member(world, timezone=SHANGHAI, name="Wang")
    manager = await member(world, "manager", timezone=BERLIN, name="Weber", language="en")
    customer = await add_customer(world, handler, "投诉公司")
    await add_complaint(world, customer, handler, received_at=utc(2026, 11, 20), hours=72)
    await add_complaint(
        world, customer, handler, received_at=utc(2026, 11, 20), hours=72, status="resolved"
    )
    clock.set(utc(2026, 11, 21, 23, 59))
    await tick(world)
    assert texts(world, handler) == []
    clock.set(utc(2026, 11, 22, 0, 0))  # 24 hours before: 08:00 in Shanghai, 01:00 in Berlin
    await tick(world)
    assert texts(world, handler) == [
        "⏳ 投诉 TS-2026-000002（投诉公司，高）将于 2026-11-23 08:00 到期"
    ]
    assert texts(world, manager) == []  # quiet hours
    clock.set(utc(2026, 11, 22, 7, 0))
    await tick(world)
    assert texts(world, manager) == [
        "⏳ Complaint TS-2026-000002 (投诉公司, high) is due at 2026-11-23 01:00"
    ]
    clock.set(utc(2026, 11, 23, 0, 0))
    await tick(world)
    assert (
        texts(world, handler)[-1]
        == "🚨 投诉 TS-2026-000002（投诉公司，高）已超过处理期限（2026-11-23 08:00）"
    )
    clock.set(utc(2026, 11, 23, 7, 0))
    await tick(world)
    assert texts(world, manager)[-1].startswith("🚨 Complaint TS-2026-000002")
    await tick(world)
    assert len(texts(world, handler)) == 2 and len(texts(world, manager)) == 2


async def test_a_key_persons_birthday_three_days_before_and_on_the_day(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")
    anna = await member(world, timezone=BERLIN, name="Anna", language="en")
    person = await add_key_person(
        world, await add_customer(world, wang, "生日公司"), "赵总", "1980-11-25"
    )
    await add_key_person(
        world, await add_customer(world, anna, "Geburtstag AG"), "Herr Kurz", "1975-11-25"
    )

    clock.set(utc(2026, 11, 22, 1, 0))  # 09:00 in Shanghai, 02:00 in Berlin
    await tick(world)
    assert texts(world, wang) == ["🎂 生日公司 的 赵总 11-25 过生日（还有 3 天）"]
    assert texts(world, anna) == []
    clock.set(utc(2026, 11, 22, 8, 0))
    await tick(world)
    assert texts(world, anna) == [
        "🎂 Herr Kurz of Geburtstag AG has a birthday on 11-25 (in 3 days)"
    ]
    clock.set(utc(2026, 11, 25, 1, 0))
    await tick(world)
    assert texts(world, wang)[-1] == "🎂 今天是 生日公司 的 赵总 的生日"
    clock.set(utc(2026, 11, 25, 8, 0))
    await tick(world)
    assert texts(world, anna)[-1] == "🎂 Today is the birthday of Herr Kurz of Geburtstag AG"
    # the outbox holds no birthday in clear: keyed by the year, payload without the date
    for row in await rows(world, subject_id=person, kind=Kind.birthday):
        assert "11-25" not in row.dedup_key and "1980" not in row.dedup_key
        assert json.loads(row.payload or "{}") in ({"when": "before"}, {"when": "day"})


async def test_an_approved_record_unchecked_for_half_a_year_asks_the_owner_to_confirm_it(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")
    anna = await member(world, timezone=BERLIN, name="Anna", language="en")
    old = utc(2026, 5, 1)
    customer = await add_customer(world, wang, "老客户", approved_at=old)
    await add_customer(world, anna, "Alt GmbH", approved_at=old)
    clock.set(utc(2026, 11, 20, 0, 0))  # 08:00 in Shanghai: asked at 09:00
    await tick(world)
    assert texts(world, wang) == []
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    assert texts(world, wang) == [
        "🔍 老客户（KH-2026-000001）已 203 天没有核对：资料是否仍然准确？"
    ]
    assert texts(world, anna) == []
    assert labels(last_of(world, wang)) == [
        "👍 资料仍准确",
        "⏰ 明天再提醒",
        "⏰ 3 天后再提醒",
        "📇 档案",
    ]
    clock.set(utc(2026, 11, 20, 8, 0))
    await tick(world)
    assert len(texts(world, anna)) == 1

    clock.set(utc(2026, 11, 20, 2, 0))
    await wang.person.press("资料仍准确")
    assert wang.person.last_answer() == "👍 已确认资料仍然准确，谢谢"
    assert texts(world, wang)[0].endswith("→ 👍 已确认资料仍然准确，谢谢")
    assert buttons(last_of(world, wang)) == []
    record = await customer_row(world, customer)
    assert record.last_checked_at == utc(2026, 11, 20, 2, 0)
    async with unit_of_work(world.services.sessions) as session:
        history = (
            await session.exec(select(ChangeRecord).where(ChangeRecord.customer_id == customer))
        ).all()
    assert [h.action for h in history] == ["confirm"]
    assert "customer.confirm" in await audit_actions(world.services.sessions)
    # the same button again, or after a restart: already dealt with
    await wang.person.press_data(
        last_of(world, wang), f"rm:a:{(await rows(world, kind=Kind.stale))[0].id}"
    )
    assert wang.person.last_answer() == "这条提醒已经处理过了。"
    clock.advance(days=30)
    await tick(world)
    assert len(texts(world, wang)) == 1  # confirmed: not asked again for 180 days


async def test_a_yearly_satisfaction_survey_prompt_per_approved_customer(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")
    anna = await member(world, timezone=BERLIN, name="Anna", language="en")
    await add_customer(
        world, wang, "老朋友", approved_at=utc(2025, 11, 1), last_checked_at=utc(2026, 11, 1)
    )
    await add_customer(
        world, anna, "Stamm AG", approved_at=utc(2025, 11, 1), last_checked_at=utc(2026, 11, 1)
    )
    await add_customer(
        world, wang, "新朋友", approved_at=utc(2026, 2, 1), last_checked_at=utc(2026, 11, 1)
    )
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    assert texts(world, wang) == ["⭐ 老朋友（KH-2026-000001）合作已满 1 年：请做一次满意度回访"]
    assert texts(world, anna) == []
    clock.set(utc(2026, 11, 20, 8, 0))
    await tick(world)
    assert texts(world, anna) == [
        "⭐ 1 year with Stamm AG (KH-2026-000002): time for a satisfaction survey"
    ]
    await wang.person.press("已完成")
    assert wang.person.last_answer() == "✅ 已完成"
    for days in (1, 100, 300):
        clock.set(utc(2026, 11, 20, 1, 0) + timedelta(days=days))
        await tick(world)
    # the next one for 老朋友 comes a year after this one (新朋友's own year is up meanwhile)
    assert sum("⭐ 老朋友" in text for text in texts(world, wang)) == 1
    assert sum("⭐ 新朋友" in text for text in texts(world, wang)) == 1


async def test_the_weekly_summary_reaches_each_manager_and_admin_in_numbers(
    world: World, clock: Clock
) -> None:
    wang = await member(world, timezone=SHANGHAI, name="Wang")
    zhou = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    weber = await member(
        world, "manager", team="West", timezone=BERLIN, name="Weber", language="en"
    )
    await add_customer(world, wang, "甲", next_followup_on=date(2026, 11, 10))
    await add_customer(world, wang, "乙", status="pending")
    async with unit_of_work(world.services.sessions) as session:
        session.add(
            Visit(
                customer_id=1,
                salesperson_id=wang.staff_id,
                visited_at=utc(2026, 11, 23),
                kind="phone",
            )
        )
    clock.set(utc(2026, 11, 25, 0, 59))  # Wednesday (WEEKLY_SUMMARY_WEEKDAY=3 here)
    await tick(world)
    assert texts(world, zhou) == []
    clock.set(utc(2026, 11, 25, 1, 0))
    await tick(world)
    [summary] = texts(world, zhou)
    [chart] = photos(world, zhou)  # the week's chart comes beside it (storage.reports)
    assert "East" in chart["caption"]
    assert summary.splitlines() == [
        "📊 本周小结 · East",
        "客户 2 个（已审核 1，待审核 1，被退回 0）",
        "本周新增客户：0",
        "本周拜访：1 次",
        "逾期未跟进：1 个客户",
        "未结投诉：0 件（其中超期 0 件）",
        "待审核：0 项",
    ]
    admin = world.admin()
    assert any("📊 本周小结 · 全公司" in m["text"] for m in world.telegram.sent_to(admin.id))
    assert texts(world, weber) == []
    clock.set(utc(2026, 11, 25, 8, 0))
    await tick(world)
    assert texts(world, weber)[0].splitlines()[:2] == [
        "📊 The week in numbers · West",
        "Customers: 0 (0 approved, 0 pending, 0 sent back)",
    ]
    clock.advance(days=3)
    await tick(world)
    assert len(texts(world, zhou)) == 1


# ---------------------------------------------------------------------------------------------
# quiet hours and grouping


async def test_quiet_hours_hold_a_reminder_until_they_end_and_each_person_may_have_their_own(
    world: World, clock: Clock
) -> None:
    late_riser = await member(world, timezone=SHANGHAI, quiet_hours="0-10", name="Late")
    night_owl = await member(world, timezone=SHANGHAI, quiet_hours="", name="Owl")
    await add_customer(world, late_riser, "早班公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))  # 09:00: the follow-up hour, inside 0-10
    await tick(world)
    assert texts(world, late_riser) == []
    [held] = await rows(world)
    assert held.status == "pending" and held.next_attempt_at == utc(2026, 11, 21, 2, 0)
    clock.set(utc(2026, 11, 21, 2, 0))
    await tick(world)
    assert len(texts(world, late_riser)) == 1

    customer = await add_customer(world, night_owl, "夜班公司", status="pending")
    manager = await member(world, "manager", timezone=SHANGHAI, quiet_hours="", name="Zhou")
    await add_review(world, customer, night_owl, submitted_at=utc(2026, 11, 20, 19, 0))
    clock.set(utc(2026, 11, 21, 19, 0))  # 03:00 in Shanghai, and no quiet hours for Zhou
    await tick(world)
    assert texts(world, manager)[-1].startswith("🗂 新客户待审核已 24 小时")


async def test_several_reminders_due_for_one_person_come_as_one_message(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    day = date(2026, 11, 21)
    for name in ("甲公司", "乙公司", "丙公司"):
        await add_customer(world, owner, name, next_followup_on=day)
    customer = await add_customer(world, owner, "丁公司")
    await add_key_person(world, customer, "赵总", "1970-11-24")
    clock.set(utc(2026, 11, 21, 1, 0))
    before = send_count(world)
    await tick(world)
    assert send_count(world) == before + 1
    [message] = world.telegram.sent_to(owner.person.id)
    assert message["text"].splitlines()[0] == "🔔 4 条提醒："
    assert "1. 📞 今天该跟进：甲公司" in message["text"]
    assert "4. 🎂 丁公司 的 赵总 11-24 过生日（还有 3 天）" in message["text"]
    # each item's first action on its own button (issue 13: one tap, full names)
    assert labels(message) == [
        "1. ✅ 已完成：甲公司",
        "2. ✅ 已完成：乙公司",
        "3. ✅ 已完成：丙公司",
        "4. 👤 关键人：赵总",
    ]
    assert {r.message_id for r in await rows(world)} == {message["message_id"]}

    await owner.person.press("2. ✅ 已完成：乙公司")
    assert owner.person.last_answer().startswith("✅ 已完成，下次跟进")
    assert labels(last_of(world, owner)) == [
        "1. ✅ 已完成：甲公司",
        "3. ✅ 已完成：丙公司",
        "4. 👤 关键人：赵总",
    ]


async def test_a_backlog_is_listed_ten_of_a_kind_and_counted_beyond(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    for index in range(30):
        await add_customer(world, owner, f"客户{index:02d}", next_followup_on=date(2026, 11, 21))
    for index in range(4):
        await add_customer(world, owner, f"老客户{index}", approved_at=utc(2026, 1, 1))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    sent = world.telegram.sent_to(owner.person.id)
    assert len(sent) == 2  # at most ten "open" buttons a message
    assert all(len(m["text"]) < 4096 for m in sent)
    assert [len(buttons(m)) for m in sent] == [10, 5]  # the 4, and "show all 30"
    assert sent[0]["text"].count("📞") == 10 and sent[1]["text"].count("🔍") == 4
    assert "…… 另有 20 个跟进到期，发送 /my 查看全部" in sent[1]["text"]
    assert labels(sent[1])[-1] == "📋 查看全部 30 条"
    every = await rows(world)
    assert len(every) == 34 and {r.status for r in every} == {"sent"}  # counted is delivered


# ---------------------------------------------------------------------------------------------
# snooze, reschedule, done


async def test_snooze_sends_the_reminder_again_a_day_later(world: World, clock: Clock) -> None:
    # issue 13: "1 day" is tomorrow at the follow-up hour (09:00), not 24 hours from the press,
    # and it moves the customer's own follow-up date (the planner reminds on the new day)
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "推迟公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    clock.set(utc(2026, 11, 21, 1, 5))
    await owner.person.press("明天再提醒")
    snoozed = "⏰ 已推迟：跟进日期改为 2026-11-22，2026-11-22 09:00 再提醒你"
    assert owner.person.last_answer() == snoozed
    assert texts(world, owner)[0].endswith(f"→ {snoozed}")
    assert buttons(last_of(world, owner)) == []
    [row] = await rows(world)
    assert (row.status, row.acted, row.snoozed_until) == ("sent", "snoozed", utc(2026, 11, 22, 1))
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 22)
    clock.set(utc(2026, 11, 22, 0, 59))
    await tick(world)
    assert len(texts(world, owner)) == 1
    clock.set(utc(2026, 11, 22, 1, 0))
    await tick(world)
    assert texts(world, owner)[-1] == "📞 今天该跟进：推迟公司（KH-2026-000001）"
    await owner.person.press("3 天后再提醒")
    assert owner.person.last_answer() == (
        "⏰ 已推迟：跟进日期改为 2026-11-25，2026-11-25 09:00 再提醒你"
    )


async def test_reschedule_with_a_button_moves_the_follow_up_and_reminds_on_that_day(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "改期公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    reminder = last_of(world, owner)
    done_button = buttons(reminder)[1][1]
    await owner.person.press("改期")
    assert owner.person.last_answer() == "改到哪一天？"
    assert labels(last_of(world, owner)) == [
        "+1 天",
        "+3 天",
        "+7 天",
        "+14 天",
        "✍️ 输入日期",
        "« 上一步",
    ]
    await owner.person.press("上一步")
    assert "📅 改期" in labels(last_of(world, owner))
    await owner.person.press("改期")
    await owner.person.press("+7 天")
    assert owner.person.last_answer() == "📅 已改期，下次跟进：2026-11-28"
    assert world.telegram.sent_to(owner.person.id)[0]["text"].endswith(
        "→ 📅 已改期，下次跟进：2026-11-28"
    )
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 28)
    assert "customer.update" in await audit_actions(world.services.sessions)
    async with unit_of_work(world.services.sessions) as session:
        [history] = (await session.exec(select(ChangeRecord))).all()
        key = await vault.data_key(session, world.services.keyring, customer)
    diff = vault.open_change(key, history)
    assert diff == {"next_followup_on": ["2026-11-21", "2026-11-28"]}
    # the old buttons are spent
    await owner.person.press_data(reminder, done_button)
    assert owner.person.last_answer() == "这条提醒已经处理过了。"
    for day in (22, 25, 27):
        clock.set(utc(2026, 11, day, 1, 0))
        await tick(world)
    assert len(texts(world, owner)) == 1
    assert await rows(world, kind=Kind.overdue) == []  # not overdue: it was moved
    clock.set(utc(2026, 11, 28, 1, 0))
    await tick(world)
    assert texts(world, owner)[-1] == "📞 今天该跟进：改期公司（KH-2026-000001）"


async def test_reschedule_to_a_typed_date_checks_the_date_like_any_answer(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(world, owner, "输入公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    await owner.person.press("改期")
    await owner.person.press("输入日期")
    assert "输入公司 的下次跟进改到哪一天？" in texts(world, owner)[-1]
    await owner.person.send("改天")
    assert "不是有效的日期" in texts(world, owner)[-1] or "日期" in texts(world, owner)[-1]
    await owner.person.send("2026-11-01")
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 21)
    await owner.person.send("+400")
    assert "一年以内" in texts(world, owner)[-1]
    await owner.person.send("12-05")
    assert texts(world, owner)[-1] == "📅 已改期，下次跟进：2026-12-05"
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 12, 5)
    [row] = await rows(world, kind=Kind.followup)
    assert row.acted == "rescheduled"


async def test_done_moves_the_follow_up_on_by_the_class_cycle(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI)
    customer = await add_customer(
        world, owner, "完成公司", customer_class="B", next_followup_on=date(2026, 11, 21)
    )
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    await owner.person.press("已完成")
    assert owner.person.last_answer() == "✅ 已完成，下次跟进：2026-12-05"
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 12, 5)
    clock.set(utc(2026, 11, 24, 1, 0))
    await tick(world)
    assert await rows(world, kind=Kind.overdue) == []


# ---------------------------------------------------------------------------------------------
# every press is checked again


async def test_a_forged_button_for_someone_elses_reminder_is_refused_and_audited(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI, name="Wang")
    intruder = await member(world, team="West", timezone=SHANGHAI, name="Intruder")
    customer = await add_customer(world, owner, "别人的公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    [row] = await rows(world)
    message = last_of(world, owner)
    for data in (
        f"rm:k:{row.id}",
        f"rm:s:{row.id}:1",
        f"rm:r:{row.id}",
        f"rm:o:{row.id}",
        f"rm:d:{row.id}:7",
    ):
        await intruder.person.press_data(message, data)
        assert intruder.person.last_answer() in (NOT_FOUND, translate("zh", "reminders.gone"))
    await intruder.person.press_data(message, "rm:s:notanumber")
    assert intruder.person.last_answer() == translate("zh", "button.expired")
    assert (await customer_row(world, customer)).next_followup_on == date(2026, 11, 21)
    assert [r.status for r in await rows(world)] == ["sent"]
    async with unit_of_work(world.services.sessions) as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).all()
    assert len(denied) == 5 and {d.entity for d in denied} == {"reminder"}
    assert all(d.actor_staff_id == intruder.staff_id for d in denied)
    assert texts(world, intruder) == []


async def test_after_a_hand_over_the_old_owners_buttons_and_planned_reminders_stand_down(
    world: World, clock: Clock
) -> None:
    old = await member(world, timezone=SHANGHAI, name="Old")
    new = await member(world, timezone=SHANGHAI, name="New")
    first = await add_customer(world, old, "移交甲", next_followup_on=date(2026, 11, 21))
    second = await add_customer(world, old, "移交乙", next_followup_on=date(2026, 11, 22))
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)  # 甲 sent; 乙 planned for tomorrow
    await change_customer(world, first, owner_id=new.staff_id)
    await change_customer(world, second, owner_id=new.staff_id)
    await old.person.press("已完成")
    assert old.person.last_answer() == NOT_FOUND  # no longer theirs to see
    assert (await customer_row(world, first)).next_followup_on == date(2026, 11, 21)
    clock.set(utc(2026, 11, 22, 1, 0))
    await tick(world)
    assert len(texts(world, old)) == 1
    # the new owner takes over both: 甲's (overdue since yesterday) and 乙's, in one message
    [handed_over] = texts(world, new)
    assert "跟进已逾期 1 天：移交甲" in handed_over and "今天该跟进：移交乙" in handed_over
    statuses = {(r.subject_id, r.recipient_id): r.status for r in await rows(world)}
    assert statuses[(second, old.staff_id)] == "cancelled"


# ---------------------------------------------------------------------------------------------
# restarts, failures and retries: late rather than never, never twice


async def test_a_restart_hours_late_sends_each_due_reminder_once(
    world: World, clock: Clock, services: Services, pacing: FakeTime
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    manager = await member(world, "manager", timezone=SHANGHAI, name="Zhou")
    await add_customer(world, owner, "重启公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 20, 23, 0))
    await tick(world)  # planned at 07:00 local, then the bot stops
    await world.app.shutdown()

    clock.set(utc(2026, 11, 21, 7, 0))  # restarted at 15:00: six hours late
    telegram = FakeTelegram()
    app = await start_app(services, telegram)
    app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))
    try:
        await scheduler.run_once(app)
        await scheduler.run_once(app)
        clock.advance(minutes=1)
        await scheduler.run_once(app)
        sent = telegram.sent_to(owner.person.id)
        assert [m["text"] for m in sent] == ["📞 今天该跟进：重启公司（KH-2026-000001）"]
        assert telegram.sent_to(manager.person.id) == []
    finally:
        await app.shutdown()
        world.app = await start_app(services, FakeTelegram())  # for the fixture's shutdown


async def test_a_crash_between_sending_and_recording_resends_once_when_its_process_is_gone(
    world: World, clock: Clock
) -> None:
    """(Changed in issue 13: the claim carries its process's token, and is taken back once that
    process stops beating, not after the 10-minute lease.)"""
    owner = await member(world, timezone=SHANGHAI)
    await add_customer(world, owner, "租约公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    await store.plan(
        world.services.sessions, keyring=world.services.keyring,
        rules=store.Rules.from_settings(world.services.settings), now=clock(),
    )  # fmt: skip
    [row] = await rows(world)
    async with unit_of_work(world.services.sessions) as session:  # a sender claimed it, then died
        await store.beat(session, token="dead-process", now=clock())
        claimed = await store.claim(
            session,
            ids=[row.id or 0],
            now=clock(),
            lease=timedelta(minutes=10),
            max_attempts=12,
            instance="dead-process",
        )
        assert claimed == [row.id]
        assert (
            await store.claim(
                session,
                ids=[row.id or 0],
                now=clock(),
                lease=timedelta(minutes=10),
                max_attempts=12,
            )
            == []
        )  # nobody else takes it meanwhile
    await tick(world)
    clock.advance(seconds=20)
    await tick(world)
    assert texts(world, owner) == []  # its process may still live: its claim is its own
    clock.advance(seconds=11)  # no heartbeat for longer than INSTANCE_STALE: gone
    await tick(world)
    clock.advance(minutes=30)
    await tick(world)
    assert len(texts(world, owner)) == 1
    [row] = await rows(world)
    assert (row.status, row.attempts) == ("sent", 2)


@dataclass
class FloodedTelegram(FakeTelegram):
    """Answers sendMessage with 429 Too Many Requests `floods` times, then normally."""

    floods: int = 1
    retry_after: int = 3

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage" and self.floods > 0:
            self.floods -= 1
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {self.retry_after}",
                "parameters": {"retry_after": self.retry_after},
            }
            return 429, json.dumps(body).encode()
        return super()._answer(name, params)


def metric(name: str) -> float:
    """A counter of /metrics (bot.metrics), this process's total so far."""
    return metrics.REGISTRY.get_sample_value(f"archive_bot_{name}_total") or 0.0


@dataclass
class BlockedTelegram(FakeTelegram):
    """Users who blocked the bot: Telegram answers 403 Forbidden to any message for them."""

    blocked: set[int] = field(default_factory=set)

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage" and int(params["chat_id"]) in self.blocked:
            body = {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
            return 403, json.dumps(body).encode()
        return super()._answer(name, params)


@pytest.fixture
async def make_world(services: Services, pacing: FakeTime) -> Any:
    made: list[Any] = []

    async def make(telegram: FakeTelegram) -> World:
        app = await start_app(services, telegram)
        app.bot_data[scheduler.SENDER_KEY] = Sender(Pacer(sleep=pacing.sleep, clock=pacing))
        made.append(app)
        return World(app, telegram, services, itertools.count(800_001))

    yield make
    for app in made:
        await app.shutdown()


async def test_flood_control_once_then_the_message_goes_through(
    make_world: Any, clock: Clock, pacing: FakeTime
) -> None:
    world = await make_world(FloodedTelegram(floods=1, retry_after=3))
    owner = await member(world, timezone=SHANGHAI)
    await add_customer(world, owner, "限流公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    result = await tick(world)
    assert result.delivered.retry_after == 1 and result.delivered.sent == 1
    assert send_count(world) == 2  # the 429, then the message
    assert 3.0 in pacing.slept or any(s >= 3.0 for s in pacing.slept)  # everyone paused 3 s
    assert texts(world, owner) == ["📞 今天该跟进：限流公司（KH-2026-000001）"]
    [row] = await rows(world)
    assert (row.status, row.attempts) == ("sent", 1)


async def test_flood_control_that_persists_defers_the_reminder_without_losing_it(
    make_world: Any, clock: Clock
) -> None:
    world = await make_world(FloodedTelegram(floods=2, retry_after=30))
    owner = await member(world, timezone=SHANGHAI)
    await add_customer(world, owner, "限流公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    result = await tick(world)
    assert result.delivered.deferred == 1 and texts(world, owner) == []
    [row] = await rows(world)
    assert (row.status, row.attempts) == ("pending", 0)  # flood control is not a failure
    assert row.next_attempt_at == utc(2026, 11, 21, 1, 0, 30) and "RetryAfter" in (
        row.last_error or ""
    )
    clock.advance(seconds=29)
    await tick(world)
    assert texts(world, owner) == []
    clock.advance(seconds=1)
    await tick(world)
    assert len(texts(world, owner)) == 1


async def test_a_person_who_blocked_the_bot_is_recorded_and_not_retried_forever(
    make_world: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    telegram = BlockedTelegram()
    world = await make_world(telegram)
    blocked = await member(world, timezone=SHANGHAI, name="Gone")
    fine = await member(world, timezone=SHANGHAI, name="Here")
    telegram.blocked.add(blocked.person.id)
    await add_customer(world, blocked, "屏蔽公司", next_followup_on=date(2026, 11, 21))
    await add_customer(world, fine, "正常公司", next_followup_on=date(2026, 11, 21))
    clock.set(utc(2026, 11, 21, 1, 0))
    sent, failed = metric("reminders_sent"), metric("reminders_failed")
    await tick(world)
    assert len(texts(world, fine)) == 1
    assert (metric("reminders_sent") - sent, metric("reminders_failed") - failed) == (1, 1)
    statuses = {r.recipient_id: (r.status, r.last_error) for r in await rows(world)}
    assert statuses[blocked.staff_id] == (
        "failed",
        "forbidden: Forbidden: bot was blocked by the user",
    )
    assert statuses[fine.staff_id][0] == "sent"
    assert "failed: forbidden" in caplog.text
    calls = send_count(world)
    for _ in range(3):
        clock.advance(hours=1)
        await tick(world)
    assert send_count(world) == calls


async def test_a_network_failure_is_retried_with_back_off_until_it_goes_through(
    world: World, clock: Clock
) -> None:
    owner = await member(world, timezone=SHANGHAI)
    await add_customer(world, owner, "断网公司", next_followup_on=date(2026, 11, 21))
    world.telegram.fail_methods.add("sendMessage")
    clock.set(utc(2026, 11, 21, 1, 0))
    await tick(world)
    [row] = await rows(world)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending", 1, utc(2026, 11, 21, 1, 0, 30)
    )  # fmt: skip
    clock.advance(seconds=30)
    await tick(world)
    [row] = await rows(world)
    assert (row.attempts, row.next_attempt_at) == (2, utc(2026, 11, 21, 1, 1, 30))  # doubled
    world.telegram.fail_methods.clear()
    clock.advance(minutes=1)
    await tick(world)
    assert len(texts(world, owner)) == 1
    [row] = await rows(world)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


async def test_planning_twice_or_at_once_creates_nothing_new(world: World, clock: Clock) -> None:
    owner = await member(world, timezone=SHANGHAI)
    manager = await member(world, "manager", timezone=BERLIN)
    for index in range(5):
        customer = await add_customer(
            world, owner, f"重复{index}", next_followup_on=date(2026, 11, 16)
        )
        await add_key_person(world, customer, f"人{index}", "1990-11-21")
    await add_review(world, customer, owner, submitted_at=utc(2026, 11, 18))
    services = world.services
    rules = store.Rules.from_settings(services.settings)
    clock.set(utc(2026, 11, 20, 0, 0))
    first = await store.plan(services.sessions, keyring=services.keyring, rules=rules, now=clock())
    # birthdays: the day (tomorrow) and, late, the notice three days before it; the follow-ups
    # (and their escalation) fell due on days nobody planned: one catch-up each (issue 14)
    assert first["catch_up"] == 2 and first["birthday"] == 10
    assert first["followup"] == 0 and first["overdue"] == 0
    count = len(await rows(world))
    again = await store.plan(services.sessions, keyring=services.keyring, rules=rules, now=clock())
    assert sum(again.values()) == 0 and len(await rows(world)) == count
    # two planners racing (two bot processes, say) after the marks are forgotten
    async with unit_of_work(services.sessions) as session:
        for mark in (await session.exec(select(ReminderPlanRun))).all():
            await session.delete(mark)
    results = await asyncio.gather(
        *(
            store.plan(services.sessions, keyring=services.keyring, rules=rules, now=clock())
            for _ in range(3)
        )
    )
    assert sum(sum(r.values()) for r in results) == 0
    async with unit_of_work(services.sessions) as session:
        keys = (
            await session.exec(
                select(Reminder.dedup_key, func.count()).group_by(Reminder.dedup_key)
            )
        ).all()
    assert len(keys) == count and all(n == 1 for _, n in keys)
    assert manager.staff_id in {r.recipient_id for r in await rows(world, kind=Kind.catch_up)}


# ---------------------------------------------------------------------------------------------
# /testreminder


async def test_an_admin_gets_a_sample_of_every_kind_at_once_even_in_quiet_hours(
    world: World, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    admin = world.admin()
    clock.set(utc(2026, 11, 20, 16, 0))  # 00:00 in Shanghai: quiet hours
    await admin.send("/testreminder")
    sent = [m["text"] for m in world.telegram.sent_to(admin.id)]
    assert sent[0] == f"🧪 正在发送 {len(Kind)} 种提醒的样例……"
    [samples] = sent[1:]
    assert samples.startswith("🧪 测试提醒")
    for marker in (
        "📞",
        "⚠️",
        "🗂 新客户待审核",
        "🗂 待审核汇总",
        "↩️",
        "⏳",
        "🚨",
        "🎂",
        "🔍",
        "⭐",
        "📊",
    ):
        assert marker in samples, marker
    assert "missing translation" not in caplog.text
    rows_ = await rows(world)
    assert len(rows_) == len(Kind) and {r.status for r in rows_} == {"sent"}
    assert "reminder.test" in await audit_actions(world.services.sessions)
    # its buttons work on the samples, harmlessly
    await admin.press("⭐")
    opened = admin.last_message()
    await admin.press("已完成", opened)
    assert admin.last_answer() == "✅ 已完成"


async def test_samples_read_well_in_english_too(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.i18n import Translator
    from bot.reminder_text import render

    notices = [
        store.sample_notice(
            Reminder(id=i, dedup_key="x", kind=k, recipient_id=1, due_at=utc(2026, 11, 20))
        )
        for i, k in enumerate(Kind, start=1)
    ]
    for language in ("zh", "en"):
        for notice in notices:
            [message] = render([notice], Translator(language))
            assert "{" not in message.text
    assert "missing translation" not in caplog.text


async def test_testreminder_is_for_admins_only(world: World) -> None:
    salesperson = await member(world, timezone=SHANGHAI)
    await salesperson.person.send("/testreminder")
    assert texts(world, salesperson) == [translate("zh", "refused.not_allowed")]
    assert await rows(world) == []
