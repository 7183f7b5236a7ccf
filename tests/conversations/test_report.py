"""/report and /stats through the bot (issue 12 items 3 and 4): a manager asks for the week and
gets a chart with Chinese labels, a summary with the crafted week's figures and an XLSX of the
same; an admin chooses among the company and every team; a salesperson is refused /report but
gets /stats; forged and stale buttons are refused; long names and many salespeople still fit.

The clock stands at NOW (Sunday 2026-11-22, 10:00 in Shanghai): "this week" is the crafted
week of tests/auxil/report_helpers.py.
"""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlmodel import select

from storage.crypto import Keyring
from storage.db import unit_of_work
from storage.models import AuditEntry, Visit
from tests.auxil.customer_factory import add_customer, staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.flow_helpers import audit_actions
from tests.auxil.report_helpers import crafted_week, utc
from tests.auxil.telegram_rules import png_size
from tests.auxil.world import World, start_app

EXPIRED = "按钮已过期"


def _photos(world: World, person: Person) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(person.id) if "photo" in m]


def _documents(world: World, person: Person) -> list[dict[str, Any]]:
    return [m for m in world.telegram.sent_to(person.id) if "document" in m]


def _texts(world: World, person: Person) -> list[str]:
    return [str(m.get("text")) for m in world.telegram.sent_to(person.id) if m.get("text")]


def _last_alert(world: World) -> str:
    return str(world.telegram.answers()[-1].get("text") or "")


async def _expired_text(world: World) -> str:
    from bot.i18n import Translator

    return Translator("zh")("button.expired")


async def test_a_manager_gets_the_week_as_chart_summary_and_xlsx(
    world: World, keyring: Keyring
) -> None:
    week = await crafted_week(world, keyring)
    await week.manager.send("/report")
    menu = week.manager.last_message()
    assert "East" in menu["text"]
    await week.manager.press("本周", menu)
    photos = _photos(world, week.manager)
    assert len(photos) == 1
    name, png = world.telegram.uploaded(week.manager.id, photos[0])
    width, height = png_size(png) or (0, 0)
    assert name.endswith(".png") and 0 < width + height <= 10_000
    if os.environ.get("REPORT_SAMPLE_PNG"):
        await asyncio.to_thread(Path(os.environ["REPORT_SAMPLE_PNG"]).write_bytes, png)
    assert "2026-11-16 至 2026-11-22" in photos[0]["caption"]
    summary = week.manager.last_text()
    assert "拜访 5 次 · 新客户 2 · 审核通过 1" in summary
    assert "按时 1 · 延迟 1 · 逾期 1 · 未到期 1" in summary
    assert "红苹果 1 · 黄苹果 1 · 青苹果 1 · 烂苹果 0" in summary
    assert "本期转入:红苹果 1 · 青苹果 1" in summary
    assert "新增 3 · 关闭 2 · 超期 2 · 当前未结 2" in summary
    assert "紧急 12.0 小时/12.0 小时" in summary and "高 96.0 小时/96.0 小时" in summary
    assert "Chen C" not in summary  # West's salesperson
    await week.manager.press("其他时间段")
    assert week.manager.last_text().startswith("📊 East")  # a new menu under the summary
    assert "拜访 5 次" in _texts(world, week.manager)[-2]
    await week.manager.press("XLSX", world.telegram.sent_to(week.manager.id)[-2])
    documents = _documents(world, week.manager)
    assert len(documents) == 1
    name, data = world.telegram.uploaded(week.manager.id, documents[0])
    assert name == "report-20261116-20261122.xlsx"
    sent = [p for n, p in world.telegram.calls if n == "sendDocument"][-1]
    assert sent.get("protect_content") is True
    book = load_workbook(io.BytesIO(data), read_only=True)
    people = list(book["业务员"].iter_rows(values_only=True))
    assert people[0] == ("业务员", "拜访", "按时", "延迟", "逾期", "未到期", "签到异常")
    assert sorted(people[1:]) == [("Li B", 2, 1, 0, 0, 1, 0), ("Wang A", 3, 0, 1, 1, 0, 0)]
    complaints = {r[0]: r[1:] for r in book["投诉"].iter_rows(min_row=2, values_only=True)}
    assert complaints["紧急"] == (1, 1, 0, 12.0, 12.0)
    assert complaints["高"] == (1, 1, 1, 96.0, 96.0)
    assert complaints["中"][:3] == (1, 0, 1) and not any(complaints["中"][3:])  # no time
    pipeline = {r[0]: r[1:] for r in book["漏斗"].iter_rows(min_row=2, values_only=True)}
    assert pipeline["红苹果"] == (1, 1) and pipeline["烂苹果"] == (0, 0)
    book.close()
    assert "report.xlsx" in await audit_actions(world.services.sessions)


async def test_an_admin_chooses_the_company_or_a_team(world: World, keyring: Keyring) -> None:
    await crafted_week(world, keyring)
    admin = world.admin()
    await admin.send("/report")
    labels = [label for label, _ in buttons(admin.last_message())]
    assert labels == ["全公司", "East", "West"]
    await admin.press("全公司")
    await admin.press("本周")
    assert "拜访 6 次 · 新客户 3" in admin.last_text()
    assert "Chen C" in admin.last_text()


async def test_custom_dates_and_bad_dates(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    manager = week.manager
    await manager.send("/report 2026-11-16 2026-11-22")
    assert len(_photos(world, manager)) == 1
    assert "拜访 5 次" in manager.last_text()
    await manager.send("/report 改天")
    assert "看不懂这个时间段" in manager.last_text()
    await manager.send("/report 2026-13-01 2026-11-22")
    assert "看不懂这个时间段" in manager.last_text()
    await manager.send("/report 2026-11-22 2026-11-01")
    assert "结束日期早于开始日期" in manager.last_text()
    await manager.send("/report 2024-01-01 2026-11-01")
    assert "最多 366 天" in manager.last_text()
    await manager.send("/report")
    await manager.press("自选时间段")
    assert "/report 2026-11-01 2026-11-30" in manager.last_text()
    assert len(_photos(world, manager)) == 1


async def test_an_empty_period_still_charts(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    await week.manager.send("/report 2026-01-05 2026-01-11")
    assert len(_photos(world, week.manager)) == 1
    summary = week.manager.last_text()
    assert "拜访 0 次 · 新客户 0 · 审核通过 0" in summary
    assert "本期转入:无" in summary and "处理用时(平均/最长):无" in summary


async def test_a_salesperson_is_refused_report_but_gets_stats(
    world: World, keyring: Keyring
) -> None:
    week = await crafted_week(world, keyring)
    await week.a.send("/report")
    assert "/stats" in week.a.last_text()
    assert _photos(world, week.a) == []
    await week.a.press_data(week.a.last_message(), "rp:p:c:w")  # forged: the company's week
    assert _photos(world, week.a) == []
    await week.a.send("/stats")
    stats = week.a.last_text()
    assert "2026-11-16 至 2026-11-22" in stats
    assert "拜访:3 次" in stats
    assert "按时 0 · 延迟 1 · 逾期 1" in stats
    assert "未结投诉:2(其中超期 1)" in stats
    # a visit logged meanwhile shows after Refresh, in the same message
    async with unit_of_work(world.services.sessions) as session:
        customer_id = (await session.exec(select(Visit.customer_id))).first()
        session.add(
            Visit(
                customer_id=customer_id or 0,
                salesperson_id=week.a_id,
                visited_at=utc("2026-11-21", 2),
                kind="phone",
            )
        )
    count_before = len(world.telegram.sent_to(week.a.id))
    await week.a.press("刷新")
    assert len(world.telegram.sent_to(week.a.id)) == count_before
    assert "拜访:4 次" in week.a.last_text()
    await week.a.press_data(week.a.last_message(), "st:x")
    assert _last_alert(world) == await _expired_text(world)


async def test_forged_and_stale_buttons(world: World, keyring: Keyring) -> None:
    week = await crafted_week(world, keyring)
    manager = week.manager
    await manager.send("/report")
    menu = manager.last_message()
    expired = await _expired_text(world)
    # another team's report and XLSX, forged by East's manager
    for data in (
        f"rp:v:{week.west_id}:20261116:20261122",
        f"rp:x:{week.west_id}:20261116:20261122",
        f"rp:p:{week.west_id}:w",
        f"rp:s:{week.west_id}",
        "rp:v:c:20261116:20261122",
    ):
        await manager.press_data(menu, data)
        assert "不能查看" in _last_alert(world), data
    # malformed: not a team, not a date, backwards, unknown period or action, extra fields
    for data in (
        "rp:v:abc:20261116:20261122",
        f"rp:v:{week.east_id}:20261399:20261122",
        f"rp:v:{week.east_id}:20261122:20261116",
        f"rp:v:{week.east_id}:2026111:20261122",
        f"rp:p:{week.east_id}:q",
        f"rp:z:{week.east_id}",
        f"rp:s:{week.east_id}:1",
        "rp:v:99999999999:20261116:20261122",
    ):
        await manager.press_data(menu, data)
        assert _last_alert(world) == expired, data
    assert _photos(world, manager) == [] and _documents(world, manager) == []
    # a manager demoted after the menu was sent: the old button is refused
    await manager.press("本周", menu)
    assert len(_photos(world, manager)) == 1
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_of(world.services.sessions, manager)
        staff.role = "salesperson"
        session.add(staff)
    await manager.press("XLSX")
    assert _documents(world, manager) == []
    assert "不能查看" in _last_alert(world)
    async with unit_of_work(world.services.sessions) as session:
        audits = (await session.exec(select(AuditEntry.action))).all()
    assert "report.xlsx" not in audits


async def test_long_names_and_many_salespeople_still_fit(world: World, keyring: Keyring) -> None:
    """60 salespeople with 200-character names in a team with a 100-character name: the chart
    stays within Telegram's photo limits, the caption and summary within theirs."""
    team = "华" * 100
    manager = await world.member("manager", team, "经" * 200)
    people = [await world.member("salesperson", team, f"{i:02d}" + "名" * 198) for i in range(60)]
    sessions = world.services.sessions
    for index, person in enumerate(people):
        customer = await add_customer(sessions, keyring, person, f"客户{index}" + "司" * 150)
        staff = await staff_of(sessions, person)
        async with unit_of_work(sessions) as session:
            for hour in range(index % 4 + 1):
                session.add(
                    Visit(
                        customer_id=customer.id or 0,
                        salesperson_id=staff.id or 0,
                        visited_at=datetime(2026, 11, 20, hour, tzinfo=UTC),
                        kind="onsite",
                        stage_change="red",
                        next_followup_on=datetime(2026, 11, 21).date(),
                    )
                )
    await manager.send("/report 2026-11-16 2026-11-22")
    photos = _photos(world, manager)
    assert len(photos) == 1  # the fake refuses a caption over 1,024 or a photo too large
    _, png = world.telegram.uploaded(manager.id, photos[0])
    width, height = png_size(png) or (0, 0)
    assert width + height <= 10_000 and len(png) < 10 * 1024 * 1024
    summary = manager.last_text()
    assert len(summary) <= 4096 and "拜访 150 次" in summary
    await manager.press("XLSX")
    _, data = world.telegram.uploaded(manager.id, _documents(world, manager)[0])
    book = load_workbook(io.BytesIO(data), read_only=True)
    rows = list(book["业务员"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == 60 and all(len(str(r[0])) == 200 for r in rows)
    book.close()


async def test_menus_offer_report_to_managers_and_stats_to_everyone(world: World) -> None:
    salesperson = await world.member("salesperson", "East", "Wang A")
    manager = await world.member("manager", "East", "Manager M")
    await salesperson.send("/help")
    assert "/stats" in salesperson.last_text() and "/report" not in salesperson.last_text()
    await manager.send("/help")
    assert "/stats" in manager.last_text() and "/report" in manager.last_text()
    menus = [p for n, p in world.telegram.calls if n == "setMyCommands"]
    assert any("report" in str(m.get("commands")) for m in menus)


async def test_a_menu_from_before_a_restart_still_works(world: World, keyring: Keyring) -> None:
    """Buttons carry the team and the period: nothing is lost when the bot restarts."""
    week = await crafted_week(world, keyring)
    await week.manager.send("/report")
    menu = week.manager.last_message()
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    week.manager.app = world.app
    await week.manager.press("上周", menu)
    assert len(_photos(world, week.manager)) == 1
    assert "2026-11-09 至 2026-11-15" in week.manager.last_text()
    assert "拜访 1 次" in week.manager.last_text()  # A's visit of 11-10
