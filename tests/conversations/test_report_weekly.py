"""The weekly summary gains the chart: on WEEKLY_SUMMARY_WEEKDAY (Monday) at DIGEST_HOUR each
manager gets the week's chart of each team they lead as a photo with a caption, and an admin
the company's; planning again, a restart or a failed send neither loses nor repeats it. And the
chart's Chinese labels render: a missing glyph fails the test."""

from __future__ import annotations

import itertools
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot import scheduler
from bot.i18n import Translator
from conversations import report_view
from storage.crypto import Keyring
from storage.db import unit_of_work
from storage.models import Reminder
from storage.reports import Followups, Period, Report, SalesRow, Scope, SeverityRow
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.report_helpers import crafted_week
from tests.auxil.world import World, start_app

MONDAY_9 = datetime(2026, 11, 23, 1, 5, tzinfo=UTC)  # 09:05 in Shanghai


def _photos(world: World, person: Person) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(person.id) if "photo" in m]


async def _chart_rows(world: World) -> list[Reminder]:
    async with unit_of_work(world.services.sessions) as session:
        rows = await session.exec(
            select(Reminder).where(col(Reminder.kind) == "report_chart").order_by(col(Reminder.id))
        )
        return list(rows.all())


async def test_the_weekly_chart_goes_out_once(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    world.services.clock = lambda: MONDAY_9
    world.telegram.fail_next["sendPhoto"] = 1  # Telegram stumbles on the first photo
    await scheduler.run_once(world.app)
    rows = await _chart_rows(world)
    # East's and West's managers one each, the admin the company's
    assert len(rows) == 3
    assert {r.subject_type for r in rows} == {"team", "company"}
    sent_now = sum(len(_photos(world, p)) for p in (week.manager, week.west_manager))
    assert sent_now + len(_photos(world, world.admin())) == 2  # one failed, kept for later
    # later ticks: the failed one goes out after its back-off, nothing twice
    for minutes in (1, 2, 5):
        world.services.clock = lambda m=minutes: MONDAY_9 + timedelta(minutes=m)
        await scheduler.run_once(world.app)
    assert len(_photos(world, week.manager)) == 1
    assert len(_photos(world, week.west_manager)) == 1
    assert len(_photos(world, world.admin())) == 1
    caption = _photos(world, week.manager)[0]["caption"]
    assert "East" in caption and "2026-11-16 至 2026-11-22" in caption
    assert "拜访 5 次" in caption and len(caption) <= 1024
    assert "拜访 6 次" in _photos(world, world.admin())[0]["caption"]
    assert all(r.status == "sent" for r in await _chart_rows(world))
    # a restart on the same database plans and sends nothing more
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    world.services.clock = lambda: MONDAY_9 + timedelta(hours=3)
    await scheduler.run_once(world.app)
    assert len(await _chart_rows(world)) == 3
    assert len(_photos(world, week.manager)) == 1
    # the text summary still comes as before
    assert any("East" in str(m.get("text")) for m in world.telegram.sent_to(week.manager.id))


async def test_a_crash_before_recording_resends_at_the_restart(
    world: World, keyring: Keyring
) -> None:
    """The process died after claiming (the row is `sending`, its lease still running): a claim
    no live sender holds is released at the next start, which sends it then instead of waiting
    out the lease (bot/sender.py); a demoted manager's chart is cancelled instead."""
    week = await crafted_week(world, keyring)
    world.services.clock = lambda: MONDAY_9
    world.telegram.fail_methods.add("sendPhoto")  # the network is down for photos
    await scheduler.run_once(world.app)
    world.telegram.fail_methods.clear()
    async with unit_of_work(world.services.sessions) as session:
        rows = list(
            (await session.exec(select(Reminder).where(col(Reminder.kind) == "report_chart"))).all()
        )
        for row in rows:  # as if the sender died mid-send: claimed, lease still running
            row.status = "sending"
            row.next_attempt_at = MONDAY_9 + timedelta(minutes=2)
            session.add(row)
    demoted = await staff_of(world.services.sessions, week.west_manager)
    async with unit_of_work(world.services.sessions) as session:
        demoted.role = "salesperson"
        session.add(demoted)
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    world.services.clock = lambda: MONDAY_9 + timedelta(minutes=1)
    await scheduler.run_once(world.app)
    assert len(_photos(world, week.manager)) == 1  # before its lease ran out, and only once
    world.services.clock = lambda: MONDAY_9 + timedelta(minutes=3)
    await scheduler.run_once(world.app)
    assert len(_photos(world, week.manager)) == 1
    assert _photos(world, week.west_manager) == []
    statuses = {r.subject_id: r.status for r in await _chart_rows(world)}
    assert statuses[week.west_id] == "cancelled" and statuses[week.east_id] == "sent"


def _sample_report(names: list[str]) -> Report:
    period = Period.of(date(2026, 11, 16), date(2026, 11, 22), UTC)
    people = [SalesRow(i, n, i + 1, Followups(i, 1, 2, 1)) for i, n in enumerate(names)]
    counter = itertools.count(1)
    return Report(
        scope=Scope(1, "华东销售一部"),
        period=period,
        salespeople=people,
        new_customers=3,
        approved=2,
        stages={"red": 2, "yellow": 3, "green": 4, "rotten": 1, None: 1},
        moved_into={"red": 1, "yellow": 2, "green": 0, "rotten": 1},
        followups=Followups(5, 2, 3, 1),
        complaints=[
            SeverityRow(s, next(counter), 1, 1, 10.5, 20.0)
            for s in ("critical", "high", "medium", "low")
        ],
        open_complaints=4,
    )


def test_chinese_labels_render_without_missing_glyphs() -> None:
    assert "CJK" in report_view.FONT_FAMILY
    report = _sample_report(["王小明", "李华", "欧阳娜娜", "张伟 Zhang Wei"])
    for language in ("zh", "en"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            png = report_view.render_chart(report, Translator(language))
        missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
        assert missing == [], missing
        assert png.startswith(b"\x89PNG")


def test_a_missing_glyph_would_be_caught() -> None:
    """The check above can fail: a character outside the font (a CJK extension-B ideograph
    U+2A6A5, or an emoji) is reported by matplotlib."""
    report = _sample_report(["\U0001f600"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report_view.render_chart(report, Translator("zh"))
    assert any("missing from font" in str(w.message) for w in caught)


async def test_a_photo_telegram_refuses_fails_with_its_reason(
    world: World, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chart Telegram will not take (here: 20,000 px wide) is failed with Telegram's reason,
    not retried for ever; the text summary still goes out."""
    week = await crafted_week(world, keyring)
    wide = (
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + (20_000).to_bytes(4, "big") + (500).to_bytes(4, "big")
    )
    monkeypatch.setattr(report_view, "render_chart", lambda report, _: wide)
    world.telegram.expect_refusals = True
    world.services.clock = lambda: MONDAY_9
    await scheduler.run_once(world.app)
    assert _photos(world, week.manager) == []
    failed = [r for r in await _chart_rows(world) if r.subject_id == week.east_id]
    assert failed[0].status == "failed"
    assert "photo_invalid_dimensions" in (failed[0].last_error or "").lower()
    assert any("East" in str(m.get("text")) for m in world.telegram.sent_to(week.manager.id))
