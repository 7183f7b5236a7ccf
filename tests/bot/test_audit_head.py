"""Admins are sent the audit log's head (newest id and MAC) every AUDIT_HEAD_DAYS at the digest
hour, in their language; a head from such a message later catches a cut or rewritten log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from bot import scheduler
from bot.context import Services
from bot.sender import Pacer, Sender
from bot.settings import Settings
from storage import audit
from storage.crypto import Keyring
from storage.db import SessionFactory, unit_of_work
from storage.models import Staff
from tests.auxil.fake_telegram import TOKEN
from tests.auxil.world import ADMIN_ID, World
from tests.conversations.test_reminders import Clock, FakeTime, member, texts, tick, utc

HEAD = re.compile(r"verify-audit --expect (\d+:[0-9a-f]{64})$", re.MULTILINE)


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        DATA_DIR=tmp_path,
        ADMIN_TELEGRAM_IDS=str(ADMIN_ID),
        WEEKLY_SUMMARY_WEEKDAY=3,  # a Wednesday: the summary stays out of most days here
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return _settings(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 20, 0, 0))  # Friday, 08:00 in Shanghai


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


def _admin_texts(world: World) -> list[str]:
    """The audit-head messages the first admin got (a weekly summary may come too)."""
    sent = [str(m.get("text", "")) for m in world.telegram.sent_to(ADMIN_ID)]
    return [t for t in sent if t.startswith("🔐")]


async def _head(world: World) -> audit.AuditHead:
    async with world.services.sessions() as session:
        found = await audit.head(session)
    assert found is not None
    return found


async def test_admins_get_the_head_daily_at_the_digest_hour(world: World, clock: Clock) -> None:
    english = await member(world, "admin", team=None, language="en", name="Ada")
    manager = await member(world, "manager", name="Zhou")
    seller = await member(world, name="Wang")

    clock.set(utc(2026, 11, 20, 0, 59))  # 08:59 in Shanghai
    await tick(world)
    assert _admin_texts(world) == [] and texts(world, english) == []

    clock.set(utc(2026, 11, 20, 1, 0))  # 09:00: DIGEST_HOUR
    await tick(world)
    [zh] = _admin_texts(world)
    [en] = texts(world, english)
    head = await _head(world)
    assert zh.startswith(f"🔐 访问日志当前末条：第 {head.id} 条\nMAC {head.mac}\n")
    assert en.startswith(f"🔐 Audit log head: entry {head.id}\nMAC {head.mac}\n")
    assert HEAD.search(zh)[1] == HEAD.search(en)[1] == str(head)  # type: ignore[index]
    assert texts(world, manager) == [] and texts(world, seller) == []

    clock.advance(hours=5)
    await tick(world)
    assert len(_admin_texts(world)) == 1  # once a day

    async with unit_of_work(world.services.sessions) as session:
        await audit.record(session, action="customer.view", actor_staff_id=seller.staff_id)
    clock.set(utc(2026, 11, 21, 1, 0))  # the next morning: the head has moved on
    await tick(world)
    newest = await _head(world)
    assert newest.id > head.id
    assert HEAD.search(_admin_texts(world)[-1])[1] == str(newest)  # type: ignore[index]
    assert len(texts(world, english)) == 2


async def test_a_head_from_the_message_catches_a_cut_log(world: World, clock: Clock) -> None:
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    [message] = _admin_texts(world)
    anchored = audit.AuditHead.parse(HEAD.search(message)[1])  # type: ignore[index]
    async with world.services.sessions() as session:
        assert (await audit.verify_chain(session, expect=anchored)).ok

    async with unit_of_work(world.services.sessions) as session:
        await session.exec(text("DELETE FROM audit_log WHERE id = :i").bindparams(i=anchored.id))
    async with world.services.sessions() as session:
        assert (await audit.verify_chain(session)).ok  # on its own, a shorter log looks fine
        report = await audit.verify_chain(session, expect=anchored)
    assert not report.ok and report.reason is not None and "expected head" in report.reason


async def test_a_deactivated_admin_gets_no_head(world: World, clock: Clock) -> None:
    former = await member(world, "admin", team=None, name="Former")
    clock.set(utc(2026, 11, 20, 0, 30))
    await tick(world)  # planned for 09:00
    async with unit_of_work(world.services.sessions) as session:
        staff = await session.get(Staff, former.staff_id)
        assert staff is not None
        staff.active = False
        session.add(staff)
    clock.set(utc(2026, 11, 20, 1, 0))
    await tick(world)
    assert texts(world, former) == []
    assert len(_admin_texts(world)) == 1


@pytest.mark.parametrize("settings", [{"AUDIT_HEAD_DAYS": 3}], indirect=True)
async def test_every_few_days_with_audit_head_days(world: World, clock: Clock) -> None:
    for day in range(6):
        clock.set(utc(2026, 11, 20, 1, 0) + timedelta(days=day))
        await tick(world)
    assert len(_admin_texts(world)) == 2


@pytest.mark.parametrize("settings", [{"AUDIT_HEAD_DAYS": 0}], indirect=True)
async def test_none_with_audit_head_days_zero(world: World, clock: Clock) -> None:
    for day in range(3):
        clock.set(utc(2026, 11, 20, 1, 0) + timedelta(days=day))
        await tick(world)
    assert _admin_texts(world) == []


@pytest.mark.parametrize("value", [-1, 32, "often"])
def test_a_bad_audit_head_days_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValidationError, match="AUDIT_HEAD_DAYS"):
        _settings(tmp_path, AUDIT_HEAD_DAYS=value)
