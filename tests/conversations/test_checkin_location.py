"""A customer's location: set on its card, who may, and where it goes (destruction, PIPL
export, reports, the visits export)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.context import Services
from storage import checkin, erasure, exports, pipl, reports
from storage.db import unit_of_work
from storage.exports import Column, ExportFormat, ExportKind, ExportRequest
from storage.models import ChangeRecord, Customer, RecordStatus, Staff
from tests.auxil.customer_factory import set_columns, staff_of
from tests.auxil.fake_telegram import Person
from tests.auxil.field_helpers import all_rows, customer_of, denied, field_world, reload, restart
from tests.auxil.flow_helpers import audit_actions, labels
from tests.auxil.world import NOW, World
from tests.conversations.test_checkin_visits import HOME, north_of, visit_at

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with field_world(services) as made:
        yield made


def card_message(person: Person) -> dict[str, Any]:
    return {"message_id": 1, "date": 1_790_000_000, "chat": person.chat, "text": "card"}


async def location_of(world: World, customer: Customer) -> checkin.Place | None:
    async with unit_of_work(world.services.sessions) as session:
        fresh = await session.get(Customer, customer.id)
        assert fresh is not None
        return await checkin.customer_location(session, world.services.keyring, fresh)


async def test_the_owner_sets_the_location_from_the_card(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await li.press_data(card_message(li), f"cu:{customer.id}")
    assert "📍 设置客户位置" in labels(li.last_message())
    await li.press("📍 设置客户位置")
    assert "请在客户所在地点发送位置:杭州明远机械有限公司" in li.last_text()
    keyboard = world.telegram.reply_keyboard(li.id)
    assert keyboard is not None and keyboard["keyboard"][0][0]["request_location"] is True
    await li.send("就在这里")  # text where a location is wanted: asked again
    assert "发送当前位置" in li.last_text()
    await li.send_location(HOME.latitude, HOME.longitude)
    assert li.last_text().startswith("📍 已保存客户位置:杭州明远机械有限公司 · KH-")
    assert labels(li.last_message()) == ["📇 打开客户卡片"]
    assert await location_of(world, customer) == HOME
    history = [h for h in await all_rows(world, ChangeRecord) if h.action == "location"]
    assert len(history) == 1 and history[0].diff_sealed is not None  # coordinates sealed
    assert "customer.location" in await audit_actions(world.services.sessions)
    # a later on-site visit far from there is flagged, and does not move the customer
    await visit_at(li, north_of(HOME, 2000))
    assert await location_of(world, customer) == HOME


async def test_the_location_step_survives_a_restart_in_english(world: World) -> None:
    li = await world.member(language="en")
    customer = await customer_of(world, li, name="Mingyuan Machinery")
    await li.press_data(card_message(li), f"ci:l:{customer.id}")
    assert "Share the location of Mingyuan Machinery" in li.last_text()
    await restart(world)  # a new process, nothing in memory
    li = Person(world.app, world.telegram, li.id, "Li", "en")
    await li.send_location(HOME.latitude, HOME.longitude)
    assert li.last_text().startswith("📍 Location saved for Mingyuan Machinery · KH-")
    assert await location_of(world, customer) == HOME


async def test_a_team_manager_may_move_it_and_the_old_place_is_in_history(world: World) -> None:
    li = await world.member()
    boss = await world.member("manager", name="Wang")
    customer = await customer_of(world, li)
    await li.press_data(card_message(li), f"ci:l:{customer.id}")
    await li.send_location(HOME.latitude, HOME.longitude)
    moved = north_of(HOME, 300)
    await boss.press_data(card_message(boss), f"ci:l:{customer.id}")
    await boss.send_location(moved.latitude, moved.longitude)
    assert await location_of(world, customer) == moved


async def test_a_forged_press_for_another_teams_customer_is_refused(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    other = await world.member("manager", team="West", name="Zhao")
    salesperson = await world.member(name="Chen")  # same team, not the owner
    for intruder in (other, salesperson):
        before = len(await denied(world))
        await intruder.press_data(card_message(intruder), f"ci:l:{customer.id}")
        assert intruder.last_text() == "找不到该记录,或您无权查看。"
        assert world.telegram.reply_keyboard(intruder.id) is None
        assert len(await denied(world)) == before + 1
        await intruder.send_location(1.0, 2.0)  # outside a flow: nearby customers, none
        assert "附近没有已设置位置的客户" in intruder.last_text()
    assert (await reload(world, customer)).location_sealed is None


async def test_the_customer_handed_over_meanwhile_is_refused_at_saving(world: World) -> None:
    li = await world.member()
    chen = await world.member(name="Chen")
    customer = await customer_of(world, li)
    await li.press_data(card_message(li), f"ci:l:{customer.id}")
    chen_row = await staff_of(world.services.sessions, chen)
    await set_columns(world.services.sessions, customer.id or 0, owner_id=chen_row.id)
    await li.send_location(HOME.latitude, HOME.longitude)
    assert "找不到该记录,或您无权查看。" in li.last_text()
    assert (await reload(world, customer)).location_sealed is None


async def test_an_archived_customer_keeps_no_new_location(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li)
    await set_columns(world.services.sessions, customer.id or 0, status=RecordStatus.archived)
    await li.press_data(card_message(li), f"cu:{customer.id}")
    assert "📍 设置客户位置" not in labels(li.last_message())
    await li.press_data(card_message(li), f"ci:l:{customer.id}")
    assert li.last_answer() == "该客户已归档,只读。"
    assert (await reload(world, customer)).location_sealed is None


# ---------------------------------------------------------------------------------------------
# where the location goes


async def _admin(world: World) -> Staff:
    await world.admin().send("/start")
    return await staff_of(world.services.sessions, world.admin())


async def test_pipl_export_holds_the_location_and_destruction_erases_it(world: World) -> None:
    li = await world.member()
    customer = await customer_of(world, li, kind="individual", name="明远张三")
    await visit_at(li, HOME)
    admin = await _admin(world)
    async with unit_of_work(world.services.sessions) as session:
        found = await pipl.export_customer(
            session, world.services.keyring, actor=admin, customer_id=customer.id or 0, now=NOW
        )
    held = found.document["customer"]["location"]
    assert (held["latitude"], held["longitude"]) == (HOME.latitude, HOME.longitude)
    [visit] = found.document["visits"]
    assert visit["checked_in_at"] is not None and visit["checkin_flagged"] is False
    async with unit_of_work(world.services.sessions) as session:
        await erasure.erase_customer(
            session, world.services.keyring, customer_id=customer.id or 0, now=NOW
        )
    fresh = await reload(world, customer)
    assert (fresh.location_sealed, fresh.location_set_at) == (None, None)
    assert await location_of(world, customer) is None
    async with unit_of_work(world.services.sessions) as session:
        assert (
            await checkin.nearby(
                session,
                keyring=world.services.keyring,
                actor=await staff_of(world.services.sessions, li),
                location={"latitude": HOME.latitude, "longitude": HOME.longitude},
            )
            == []
        )


async def test_reports_count_flagged_visits_per_salesperson(world: World) -> None:
    li = await world.member(name="Li")
    chen = await world.member(name="Chen")
    boss = await world.member("manager", name="Wang")
    await customer_of(world, li)
    await visit_at(li, HOME)  # places the customer
    await visit_at(li, north_of(HOME, 900))  # flagged
    await visit_at(li, north_of(HOME, 100))  # within
    await customer_of(world, chen)
    manager = await staff_of(world.services.sessions, boss)
    period = reports.Period.of(date(2026, 11, 16), date(2026, 11, 22), ZONE)
    async with unit_of_work(world.services.sessions) as session:
        report = await reports.build(
            session, actor=manager, team_id=manager.team_id, period=period, today=date(2026, 11, 22)
        )
    by_name = {p.name: p for p in report.salespeople}
    assert (by_name["Li"].visits, by_name["Li"].flagged) == (3, 1)
    assert by_name["Chen"].flagged == 0
    assert report.flagged == 1
    await boss.send("/report")
    await boss.press("本周")
    sent = [str(m.get("caption") or m.get("text") or "") for m in world.telegram.sent_to(boss.id)]
    assert any("签到异常的拜访:1(Li 1)" in text for text in sent), sent


class Plain:
    def header(self, column: Column) -> str:
        return column.name

    def value(self, column: Column, value: Any) -> str:
        return f"{value}"


async def test_the_visits_export_has_distance_and_flag_columns(
    world: World, tmp_path: Path
) -> None:
    li = await world.member()
    await customer_of(world, li)
    await visit_at(li, HOME)
    await visit_at(li, north_of(HOME, 700))
    await visit_at(li, None)
    path = tmp_path / "out.csv"
    await exports.write_export(
        world.services.sessions,
        keyring=world.services.keyring,
        actor=await staff_of(world.services.sessions, li),
        request=ExportRequest(kind=ExportKind.visits, format=ExportFormat.csv),
        path=path,
        labels=Plain(),
        zone=ZONE,
        title="t",
    )
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    exports.discard(path)
    header = rows.index(next(r for r in rows if "checkin_flagged" in r))
    names = rows[header]
    body = [dict(zip(names, r, strict=True)) for r in rows[header + 1 :] if len(r) == len(names)]
    assert [(r["checkin_distance_m"], r["checkin_flagged"]) for r in body] == [
        ("0", "False"),
        ("700", "True"),
        ("", "False"),
    ]
    assert body[0]["checked_in_at"].startswith("2026-11-22T10:00")
    assert body[2]["checked_in_at"] == ""
