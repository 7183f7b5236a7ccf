"""Scheduled backups (issue 11, item 1): at BACKUP_HOUR the bot backs itself up once a day, in
one of its processes, and every admin is told how it went (or that it failed), in their
language, through the outbox (so quiet hours hold the 03:00 report until the morning)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot import scheduler
from bot.context import Services
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import backup as backup_store
from storage.crypto import Keyring
from storage.db import SessionFactory, reading, unit_of_work
from storage.models import AuditEntry, Reminder, Staff
from tests.auxil.backup_helpers import fill, manifest_of
from tests.auxil.fake_telegram import TOKEN, FakeTelegram
from tests.auxil.world import ADMIN_ID, World, start_app
from tests.conversations.test_reminders import Clock, FakeTime, member, texts, tick, utc

SLOT = utc(2026, 11, 20, 19, 0)  # 03:00 in Shanghai, Saturday 21 November


@pytest.fixture
def settings(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    values: dict[str, object] = {"BACKUP_HOUR": 3, "BACKUP_KEEP": 2}
    values.update(getattr(request, "param", {}))
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        DATABASE_URL=database_url,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        AUDIT_HEAD_DAYS=0,
        WEEKLY_SUMMARY_WEEKDAY=3,
        **values,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 20, 10, 0))  # Friday 18:00 in Shanghai: the bot's first start


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


def _reports(world: World, telegram_id: int = ADMIN_ID) -> list[str]:
    sent = [str(m.get("text", "")) for m in world.telegram.sent_to(telegram_id)]
    return [t for t in sent if t.startswith(("💾", "⚠️"))]


async def test_admins_hear_of_each_scheduled_backup(
    world: World, clock: Clock, settings: Settings, keyring: Keyring
) -> None:
    english = await member(world, "admin", team=None, language="en", name="Ada")
    manager = await member(world, "manager", name="Zhou")
    former = await member(world, "admin", team=None, name="Former")
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, former.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    await fill(world.services.sessions, keyring, count=2)

    assert await scheduler.scheduled_backup(world.app) is None  # first start: from the next 03:00
    clock.set(SLOT - timedelta(minutes=1))  # 02:59
    assert await scheduler.scheduled_backup(world.app) is None
    assert backup_store.backups_in(settings.backup_dir) == []

    clock.set(SLOT)
    told = await scheduler.scheduled_backup(world.app)
    [path] = backup_store.backups_in(settings.backup_dir)
    assert told is not None and told["file"] == path.name
    assert manifest_of(path).tables["customers"] == told["customers"] == 2
    assert _reports(world) == []  # 03:00 is in the admins' quiet hours (21-8)

    clock.set(utc(2026, 11, 21, 0, 0))  # 08:00
    await tick(world)
    [zh] = _reports(world)
    [en] = [t for t in texts(world, english) if t.startswith("💾")]
    assert zh.startswith(f"💾 备份完成：{path.name}（{told['size']}）\n客户 2 · 联系人 2 · 拜访 2")
    assert en.startswith(
        f"💾 Backup done: {path.name} ({told['size']})\nCustomers 2 · key persons 2"
    )
    assert "ENCRYPTION_KEYS" in en
    assert texts(world, manager) == [] and texts(world, former) == []

    clock.advance(hours=5)
    assert await scheduler.scheduled_backup(world.app) is None  # once a slot
    for day in (22, 23):  # the next days: one each, BACKUP_KEEP=2 of them kept
        clock.set(utc(2026, 11, day - 1, 19, 0))
        assert await scheduler.scheduled_backup(world.app) is not None
    assert len(backup_store.backups_in(settings.backup_dir)) == 2
    async with reading(world.services.sessions) as session:
        audited = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "backup"))
        ).all()
    assert len(audited) == 3


async def test_two_processes_back_up_a_slot_once(
    world: World, clock: Clock, services: Services, settings: Settings
) -> None:
    """A second bot process on the same database (or a restart) never takes the same backup."""
    await scheduler.scheduled_backup(world.app)  # the first start sets the mark
    other = await start_app(services, FakeTelegram())
    try:
        clock.set(SLOT)
        results = await asyncio.gather(
            scheduler.scheduled_backup(world.app), scheduler.scheduled_backup(other)
        )
        again = await start_app(services, FakeTelegram())  # a restart in the middle of the day
        try:
            clock.advance(hours=2)
            assert await scheduler.scheduled_backup(again) is None
        finally:
            await again.shutdown()
    finally:
        await other.shutdown()
    assert sum(r is not None for r in results) == 1
    assert len(backup_store.backups_in(settings.backup_dir)) == 1
    async with reading(world.services.sessions) as session:
        reports = (await session.exec(select(Reminder).where(Reminder.kind == "backup"))).all()
    assert len(reports) == 1  # the one admin, once


async def test_a_failed_backup_is_reported_to_admins(
    world: World, clock: Clock, settings: Settings, tmp_path: Path
) -> None:
    english = await member(world, "admin", team=None, language="en", name="Ada")
    await scheduler.scheduled_backup(world.app)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backups should go")
    world.services.settings = settings.model_copy(update={"BACKUP_DIR": blocker})
    clock.set(utc(2026, 11, 21, 1, 0))  # 09:00: after a downtime over 03:00, late not never
    told = await scheduler.scheduled_backup(world.app)
    assert told is not None and told["failed"]
    [zh] = _reports(world)
    [en] = [t for t in texts(world, english) if t.startswith("⚠️")]
    assert zh.startswith(f"⚠️ 定时备份失败：BACKUP_DIR: cannot create {blocker}")
    assert en.startswith(f"⚠️ The scheduled backup failed: BACKUP_DIR: cannot create {blocker}")
    assert "python -m bot backup" in en


async def test_an_unexpected_failure_with_a_long_reason_still_fits_one_message(
    world: World, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise backup_store.BackupError("disk said " + "no " * 3000)

    monkeypatch.setattr(scheduler, "_backup_in_thread", explode)
    await scheduler.scheduled_backup(world.app)
    clock.set(utc(2026, 11, 21, 1, 0))
    assert await scheduler.scheduled_backup(world.app) is not None
    [report] = _reports(world)
    assert report.startswith("⚠️ 定时备份失败：disk said no no") and len(report) < 1000


@pytest.mark.parametrize("settings", [{"BACKUP_HOUR": "off"}], indirect=True)
async def test_no_scheduled_backups_with_backup_hour_off(
    world: World, clock: Clock, settings: Settings
) -> None:
    counter = itertools.count()
    for _ in range(3):
        clock.set(utc(2026, 11, 20 + next(counter), 19, 0))
        assert await scheduler.scheduled_backup(world.app) is None
    assert backup_store.backups_in(settings.backup_dir) == []
    assert world.app.job_queue is None or not world.app.job_queue.get_jobs_by_name(
        scheduler.BACKUP_JOB
    )
