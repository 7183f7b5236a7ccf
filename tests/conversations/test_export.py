"""/export through the bot (issue 12 item 1): a salesperson, a manager and an admin each export
exactly the rows they may see, masked unless a manager or admin asks for clear columns behind a
warning (audited with rows and columns); formulas neutralised; filters and periods honoured;
forged and stale buttons, deactivated people and a second export at once refused; progress
edited; the file sent protected and gone from disk afterwards.

The files are read back from the bytes the fake Telegram received: XLSX with openpyxl, CSV with
`csv`, and compared with the database.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest
from sqlmodel import col, select

from bot.i18n import translate
from conversations import export as export_flow
from storage import key_persons as kp_store
from storage.db import unit_of_work
from storage.models import Complaint, Customer, RecordStatus, Staff, Visit
from tests.auxil.customer_factory import add_customer, set_columns, staff_of
from tests.auxil.fake_telegram import Person, Upload, buttons
from tests.auxil.record_helpers import audit_entries
from tests.auxil.world import NOW, World, start_app

NAME = translate("zh", "field.name")
PROFILE = translate("zh", "field.profile")
PURPOSE = translate("zh", "field.purpose")
PHONE = "13812345678"
MASKED_PHONE = "138****5678"


# ---------------------------------------------------------------------------------------------
# helpers


async def company(world: World) -> dict[str, Person]:
    """Two teams: East (manager, two salespeople) and West (one salesperson)."""
    return {
        "manager": await world.member("manager", "East", "Manager Zhao"),
        "wang": await world.member("salesperson", "East", "Wang"),
        "li": await world.member("salesperson", "East", "Li"),
        "west": await world.member("salesperson", "West", "Sun"),
    }


async def customers_of(world: World, people: dict[str, Person]) -> dict[str, Customer]:
    s, k = world.services.sessions, world.services.keyring
    found = {
        "wang1": await add_customer(s, k, people["wang"], "王一机械", phones=[PHONE]),
        "wang2": await add_customer(s, k, people["wang"], "王二贸易", customer_class="A"),
        "li1": await add_customer(s, k, people["li"], '=HYPERLINK("http://x")', region="杭州"),
        "west1": await add_customer(s, k, people["west"], "西部科技"),
        "gone": await add_customer(s, k, people["wang"], "已销毁公司"),
        "old": await add_customer(s, k, people["wang"], "归档公司", status=RecordStatus.archived),
    }
    await set_columns(s, found["gone"].id or 0, status=RecordStatus.destroyed)
    return found


async def open_menu(person: Person) -> dict[str, Any]:
    await person.send("/export")
    return person.last_message()


async def finish(world: World) -> None:
    await export_flow.wait_for_exports(world.app.bot_data)


def uploads(world: World, person: Person) -> list[Upload]:
    return [u for (chat, _m), u in sorted(world.telegram.documents.items()) if chat == person.id]


def xlsx_rows(upload: Upload) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(upload.content), read_only=True)
    return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]


def csv_rows(upload: Upload) -> list[list[str]]:
    assert upload.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    return list(csv.reader(io.StringIO(upload.content.decode("utf-8-sig"))))


def column(rows: list[list[Any]], header: str) -> list[Any]:
    index = rows[0].index(header)
    return [r[index] for r in rows[1:]]


async def export(world: World, person: Person, *presses: str) -> Upload:
    """Open /export, press the labels in order, then export (masked); return the file."""
    menu = await open_menu(person)
    for label in presses:
        await person.press(label, menu)
        menu = person.telegram.messages[(person.id, menu["message_id"])]
    await person.press("导出（脱敏）", menu)
    await finish(world)
    found = uploads(world, person)
    assert found, person.last_text()
    return found[-1]


def exports_folder(world: World) -> list[Any]:
    folder = world.services.settings.DATA_DIR / "exports"
    return list(folder.iterdir()) if folder.exists() else []


async def visible_numbers(world: World, person: Person) -> set[str]:
    """What the database says the person may see: their customers by the permission rule."""
    from storage.permissions import can_export

    staff = await staff_of(world.services.sessions, person)
    async with unit_of_work(world.services.sessions) as session:
        rows = (await session.exec(select(Customer))).all()
    listed = {"draft", "pending", "approved", "rejected"}
    return {c.customer_no for c in rows if can_export(staff, c) and c.status in listed}


# ---------------------------------------------------------------------------------------------
# who sees what


@pytest.mark.parametrize("who", ["wang", "manager", "admin", "west"])
async def test_each_role_exports_exactly_what_it_may_see(world: World, who: str) -> None:
    people = await company(world)
    await customers_of(world, people)
    person = world.admin() if who == "admin" else people[who]
    upload = await export(world, person)
    rows = xlsx_rows(upload)
    assert rows[0][0] == "客户编号" and translate("zh", "field.phones") in rows[0]
    numbers = set(column(rows, "客户编号"))
    assert numbers == await visible_numbers(world, person)
    assert "已销毁公司" not in str(rows) and "归档公司" not in str(rows)
    assert upload.params["protect_content"] is True
    assert exports_folder(world) == []  # the file is gone from disk
    [entry] = await audit_entries(world.services.sessions, "export")
    detail = json.loads(entry.detail or "{}")
    assert detail["rows"] == len(numbers) and detail["clear"] is False
    assert detail["kind"] == "customers" and "王" not in (entry.detail or "")


async def test_masked_by_default_and_formulas_neutralised(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    rows = xlsx_rows(await export(world, people["manager"]))
    phones = [p for p in column(rows, phone_header(rows)) if p]
    assert phones == [MASKED_PHONE]
    assert PHONE not in str(rows)
    names = column(rows, NAME)
    assert '\'=HYPERLINK("http://x")' in names


def phone_header(rows: list[list[Any]]) -> str:
    return next(h for h in rows[0] if h and "电话" in h and "开票" not in h)


async def test_clear_export_needs_the_warning_and_is_audited_with_columns(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    manager = people["manager"]
    menu = await open_menu(manager)
    await manager.press("明文导出", menu)
    warning = manager.telegram.messages[(manager.id, menu["message_id"])]
    assert "个人信息保护法" in warning["text"] and "电话" in warning["text"]
    await manager.press("确认明文导出", warning)
    await finish(world)
    rows = xlsx_rows(uploads(world, manager)[-1])
    assert PHONE in str(rows) or "+86 138 1234 5678" in str(rows) or "+8613812345678" in str(rows)
    [entry] = await audit_entries(world.services.sessions, "export.clear")
    detail = json.loads(entry.detail or "{}")
    assert detail["clear"] is True and "phones" in detail["clear_columns"]
    assert detail["rows"] == 3
    assert PHONE not in (entry.detail or "")


async def test_a_salesperson_is_never_offered_nor_given_clear_columns(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    wang = people["wang"]
    menu = await open_menu(wang)
    assert not any("明文" in text for text, _data in buttons(menu))
    code = export_flow.Choice().code()
    await wang.press_data(menu, f"xp:y:{code}")  # forged: the clear export
    await finish(world)
    assert "只有经理和管理员" in (wang.last_answer() or "")
    await wang.press_data(menu, f"xp:w:{code}")
    assert "只有经理和管理员" in (wang.last_answer() or "")
    assert uploads(world, wang) == []
    assert await audit_entries(world.services.sessions, "export.clear") == []


async def test_csv_is_utf8_with_bom_iso_dates_and_neutralised(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    upload = await export(world, people["manager"], "CSV")
    assert upload.filename.endswith(".csv")
    rows = csv_rows(upload)
    assert rows[0][0] == "客户编号"
    cells = [cell for row in rows for cell in row]
    assert '\'=HYPERLINK("http://x")' in cells
    created = column(rows, "录入时间")
    assert all(datetime.fromisoformat(v) for v in created)
    assert MASKED_PHONE in cells and PHONE not in "".join(cells)


async def test_dates_are_real_dates_in_the_readers_zone(world: World) -> None:
    people = await company(world)
    found = await customers_of(world, people)
    entered = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # 07:30 on the 22nd in Shanghai
    for customer in found.values():
        await set_columns(world.services.sessions, customer.id or 0, created_at=entered)
    rows = xlsx_rows(await export(world, people["wang"]))
    created = column(rows, "录入时间")
    assert created and all(v == datetime(2026, 11, 22, 7, 30) for v in created)
    follow_ups = [v for v in column(rows, translate("zh", "field.next_followup_on")) if v]
    assert all(isinstance(v, datetime) and v.hour == 0 for v in follow_ups)  # a day


# ---------------------------------------------------------------------------------------------
# filters and periods


async def test_filters_class_status_and_owner(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    manager = people["manager"]
    menu = await open_menu(manager)
    await manager.press("客户分类", menu)
    values = manager.telegram.messages[(manager.id, menu["message_id"])]
    await manager.press("A", values)
    menu = manager.telegram.messages[(manager.id, menu["message_id"])]
    await manager.press("导出（脱敏）", menu)
    await finish(world)
    rows = xlsx_rows(uploads(world, manager)[-1])
    assert column(rows, NAME) == ["王二贸易"]
    # archived only through the status filter
    upload = await export(world, manager, "状态", "归档")
    assert column(xlsx_rows(upload), NAME) == ["归档公司"]
    # an owner among those the manager sees
    li = await staff_of(world.services.sessions, people["li"])
    code = export_flow.Choice(owner=li.id).code()
    await manager.press_data(menu, f"xp:g:{code}")
    await finish(world)
    rows = xlsx_rows(uploads(world, manager)[-1])
    assert column(rows, "负责人") == ["Li"]


async def test_forged_owner_industry_and_status_are_refused(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    manager = people["manager"]
    menu = await open_menu(manager)
    west = await staff_of(world.services.sessions, people["west"])
    for forged in (
        f"xp:g:{export_flow.Choice(owner=west.id).code()}",  # another team's salesperson
        f"xp:g:{export_flow.Choice(industry='deadbeef').code()}",  # an industry never offered
        "xp:g:cxa--x...",  # status "destroyed" is no choice
        "xp:g:zz",
        "xp:m:cxa---...99999999999",
        "xp:f:cxa---...:z",
    ):
        await manager.press_data(menu, forged)
        await finish(world)
        assert manager.last_answer() == "此按钮已过期。" or "过期" in (manager.last_answer() or "")
    assert uploads(world, manager) == []


async def test_visits_and_complaints_by_period(world: World) -> None:
    people = await company(world)
    found = await customers_of(world, people)
    wang = await staff_of(world.services.sessions, people["wang"])
    west = await staff_of(world.services.sessions, people["west"])
    async with unit_of_work(world.services.sessions) as session:
        for days, text in ((3, "本月拜访"), (40, "上月拜访"), (400, "去年拜访")):
            session.add(
                Visit(
                    customer_id=found["wang1"].id or 0,
                    salesperson_id=wang.id or 0,
                    visited_at=NOW - timedelta(days=days),
                    kind="on_site",
                    purpose=text,
                )
            )
        session.add(
            Visit(
                customer_id=found["west1"].id or 0,
                salesperson_id=west.id or 0,
                visited_at=NOW,
                kind="phone",
                purpose="西部拜访",
            )
        )
        session.add(
            Visit(
                customer_id=found["gone"].id or 0,
                salesperson_id=wang.id or 0,
                visited_at=NOW,
                kind="phone",
                purpose="销毁客户的拜访",
            )
        )
        session.add(
            Complaint(
                complaint_no="TS-2026-000001",
                customer_id=found["wang1"].id or 0,
                received_by=wang.id or 0,
                received_at=NOW - timedelta(days=1),
                type="quality",
                severity="high",
                description="@SUM(A1)",
                due_at=NOW + timedelta(days=2),
            )
        )
    manager = people["manager"]
    rows = xlsx_rows(await export(world, manager, "拜访记录"))
    texts = str(column(rows, PURPOSE))
    assert "本月拜访" in texts and "上月拜访" in texts and "去年拜访" in texts
    assert "西部拜访" not in texts and "销毁客户的拜访" not in texts
    rows = xlsx_rows(await export(world, manager, "拜访记录", "时间段", "本月"))
    texts = str(rows)
    assert "本月拜访" in texts and "上月拜访" not in texts and "去年拜访" not in texts
    rows = xlsx_rows(await export(world, manager, "投诉"))
    assert "'@SUM(A1)" in str(rows) and len(rows) == 2


async def test_key_persons_phones_and_birthdays_masked(world: World) -> None:
    people = await company(world)
    found = await customers_of(world, people)
    wang = await staff_of(world.services.sessions, people["wang"])
    async with unit_of_work(world.services.sessions) as session:
        customer = await session.get(Customer, found["wang1"].id)
        assert customer is not None
        await kp_store.add_key_person(
            session,
            keyring=world.services.keyring,
            actor=wang,
            customer=customer,
            values={"kp_name": "张经理", "kp_phones": ["13900001111"], "kp_birthday": "1980-05-06"},
        )
    rows = xlsx_rows(await export(world, people["wang"], "关键人"))
    assert "张经理" in str(rows) and "139****1111" in str(rows)
    assert "13900001111" not in str(rows) and "1980" not in str(rows) and "••••" in str(rows)
    manager = people["manager"]
    menu = await open_menu(manager)
    await manager.press("关键人", menu)
    menu = manager.telegram.messages[(manager.id, menu["message_id"])]
    await manager.press("明文导出", menu)
    warning = manager.telegram.messages[(manager.id, menu["message_id"])]
    await manager.press("确认明文导出", warning)
    await finish(world)
    rows = xlsx_rows(uploads(world, manager)[-1])
    assert "1980" in str(rows)


# ---------------------------------------------------------------------------------------------
# unhappy paths


async def test_empty_result_sends_no_file(world: World) -> None:
    wang = await world.member("salesperson", "East", "Wang")
    menu = await open_menu(wang)
    await wang.press("导出（脱敏）", menu)
    await finish(world)
    assert uploads(world, wang) == []
    assert "没有可导出的内容" in wang.last_text()
    assert exports_folder(world) == []


async def test_deactivated_and_strangers_are_refused(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    wang = people["wang"]
    menu = await open_menu(wang)
    async with unit_of_work(world.services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == wang.id))).one()
        staff.active = False
        session.add(staff)
    await wang.press("导出（脱敏）", menu)
    await finish(world)
    assert uploads(world, wang) == []
    stranger = world.person(123_456)
    await stranger.send("/export")
    assert uploads(world, stranger) == []
    assert "导出" not in stranger.last_text() or "邀请" in stranger.last_text()


async def test_a_second_export_at_once_is_refused(world: World, monkeypatch: Any) -> None:
    people = await company(world)
    await customers_of(world, people)
    manager = people["manager"]
    menu = await open_menu(manager)
    gate = __import__("asyncio").Event()
    real = export_flow.exports.write_export

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(export_flow.exports, "write_export", slow)
    await manager.press("导出（脱敏）", menu)
    await manager.press_data(menu, f"xp:g:{export_flow.Choice().code()}")
    assert "仍在生成中" in (manager.last_answer() or "")
    gate.set()
    await finish(world)
    assert len(uploads(world, manager)) == 1


async def test_progress_is_edited_and_long_data_fits(world: World, monkeypatch: Any) -> None:
    monkeypatch.setattr(export_flow, "EDIT_INTERVAL", 0.0)
    monkeypatch.setattr(export_flow, "PAGE_ROWS", 3)
    wang = await world.member("salesperson", "East", "W" * 200)
    s, k = world.services.sessions, world.services.keyring
    long_name = "长" * 200
    for i in range(20):
        await add_customer(s, k, wang, f"{long_name[:190]}{i:03d}", profile="=" + "x" * 5000)
    menu = await open_menu(wang)
    await wang.press("导出（脱敏）", menu)
    await finish(world)
    edits = [
        p["text"]
        for name, p in world.telegram.calls
        if name == "editMessageText" and "%" in p["text"]
    ]
    assert len(edits) >= 5 and edits[-1].count("100%") == 1
    rows = xlsx_rows(uploads(world, wang)[-1])
    assert len(rows) == 21 and all(len(str(n)) == 193 for n in column(rows, NAME))
    assert all(str(v).startswith("'=") for v in column(rows, PROFILE))
    progress = world.telegram.messages[(wang.id, menu["message_id"])]["text"]
    assert "已导出" in progress and "20 行" in progress


async def test_a_failed_send_leaves_no_file(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    manager = people["manager"]
    menu = await open_menu(manager)
    world.telegram.fail_methods.add("sendDocument")
    await manager.press("导出（脱敏）", menu)
    await finish(world)
    assert exports_folder(world) == []
    assert "导出失败" in manager.last_text()


async def test_english_headers(world: World) -> None:
    wang = await world.member("salesperson", "East", "Wang", language="en")
    await add_customer(world.services.sessions, world.services.keyring, wang, "Acme")
    await wang.send("/export")
    await wang.press("Export (masked)")
    await finish(world)
    rows = xlsx_rows(uploads(world, wang)[-1])
    assert rows[0][0] == "Customer number" and "Approved" not in rows[0]
    assert "Awaiting approval" in rows[1] or "Approved" in rows[1] or "Draft" in rows[1]


async def test_exported_rows_match_the_database(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    admin = world.admin()
    rows = xlsx_rows(await export(world, admin))
    async with unit_of_work(world.services.sessions) as session:
        names = set(
            (
                await session.exec(
                    select(Customer.name).where(
                        col(Customer.status).in_(["draft", "pending", "approved", "rejected"])
                    )
                )
            ).all()
        )
    shown = {str(n).removeprefix("'") for n in column(rows, NAME)}
    assert shown == names


async def test_two_people_at_once_and_a_restart_between_presses(world: World) -> None:
    people = await company(world)
    await customers_of(world, people)
    wang, west = people["wang"], people["west"]
    wang_menu, west_menu = await open_menu(wang), await open_menu(west)
    await wang.press("导出（脱敏）", wang_menu)
    await west.press("导出（脱敏）", west_menu)
    await finish(world)
    assert column(xlsx_rows(uploads(world, wang)[-1]), NAME) == ["王一机械", "王二贸易"]
    assert column(xlsx_rows(uploads(world, west)[-1]), NAME) == ["西部科技"]
    # a menu opened before a restart works on the new Application (same database): its
    # buttons carry all they need
    menu = await open_menu(wang)
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    restarted = Person(world.app, world.telegram, wang.id, "Wang")
    await restarted.press("CSV", menu)
    menu = world.telegram.messages[(wang.id, menu["message_id"])]
    await restarted.press("导出（脱敏）", menu)
    await export_flow.wait_for_exports(world.app.bot_data)
    assert uploads(world, wang)[-1].filename.endswith(".csv")
