"""/import (issue 12 item 2) through the bot's surface: template, dry run, confirmation.

A manager gets the template, fills it, sends it back, reads the dry run (counts and the
rejected rows with reasons), chooses the owner and confirms; the rows become customers all or
nothing. Salespeople are refused; forged and stale buttons, two presses at once and a restart
between dry run and confirmation do nothing twice.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import col, func, select

from conversations import import_rows
from storage import customers as customer_store
from storage import imports, vault
from storage.audit import verify_chain
from storage.db import unit_of_work
from storage.models import (
    AuditEntry,
    BlindIndex,
    ChangeRecord,
    Customer,
    DataKey,
    Import,
    Reminder,
    Review,
)
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import Person, buttons
from tests.auxil.import_helpers import (
    NAMES,
    data_of,
    header_row,
    last_document,
    read_sheet,
    row,
    workbook,
)
from tests.auxil.record_helpers import make_customer
from tests.auxil.world import ADMIN_ID, World, start_app

TAX_OK = "91330100MA27XL123W"
TAX_BAD_CHECK = "91330100MA27XL1230"


async def _team(world: World) -> tuple[Person, Person]:
    manager = await world.member("manager", "East", "Wang")
    sales = await world.member("salesperson", "East", "Li")
    return manager, sales


async def _dry_run(person: Person, content: bytes) -> dict[str, Any]:
    """/import, then the filled file; returns the report message."""
    await person.send("/import")
    await person.send_file(content)
    return person.last_message()


async def _count(world: World, model: Any) -> int:
    async with unit_of_work(world.services.sessions) as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def _snapshot(world: World) -> dict[str, int]:
    return {
        m.__name__: await _count(world, m)
        for m in (Customer, DataKey, BlindIndex, Review, ChangeRecord)
    }


# ---------------------------------------------------------------------------------------------
# the template


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_template_has_the_headers_an_example_and_drop_down_lists(
    world: World, language: str
) -> None:
    manager = await world.member("manager", "East", "Wang", language=language)
    await world.member("salesperson", "East", "Li")
    await manager.send("/import")
    template = last_document(manager)
    assert template["name"].endswith(".xlsx")
    book = load_workbook(io.BytesIO(template["content"]))
    sheet = book.worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == header_row(language)
    assert len(rows) == 2 and rows[1][1]  # one example row, with a name
    validations = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation}
    lists = book.worksheets[1]
    assert lists.sheet_state == "hidden"
    by_header = {}
    for sqref, formula in validations.items():
        column = sqref.split(":")[0].rstrip("0123456789")
        letter = formula.split("!")[1].split(":")[0].strip("$").rstrip("0123456789").strip("$")
        values = [
            c[0]
            for c in lists.iter_rows(
                min_col=ord(letter) - 64, max_col=ord(letter) - 64, values_only=True
            )
            if c[0]
        ]
        by_header[sheet[f"{column}1"].value] = values
    kind, stage = header_row(language)[0], header_row(language)[16]
    assert by_header[kind] == (["企业", "个人"] if language == "zh" else ["Company", "Individual"])
    assert len(by_header[stage]) == 4
    assert len(by_header) == 8  # kind, size, source, class, stage, deal, consent, its method
    # the example row of the template imports nothing, and is no error either
    await manager.send_file(template["content"])
    assert "0" in manager.last_text()


async def test_salesperson_is_refused_and_nothing_opens(world: World) -> None:
    _manager, sales = await _team(world)
    await sales.send("/import")
    assert sales.last_text() == "您没有权限执行此操作。"
    assert await _count(world, Import) == 0
    await sales.send_file(workbook([row(NAMES[0])]))  # a spreadsheet is just a document
    assert await _count(world, Customer) == 0


# ---------------------------------------------------------------------------------------------
# the dry run and the confirmation


async def test_bad_rows_are_rejected_with_reasons_and_the_rest_imported(world: World) -> None:
    manager, sales = await _team(world)
    rows = [
        row(NAMES[0], "13812345678"),
        row(NAMES[1], "12345"),  # bad phone
        row(NAMES[2], tax_no=TAX_BAD_CHECK, invoice_title="温州正泰"),  # check character
        {**row(NAMES[3]), "source": None},  # required missing
        row(NAMES[4], stage="紫苹果"),  # not a choice
        row(NAMES[5], kind="个人", size="50 人以下"),  # size does not apply to an individual
        row("长" * 101),  # over /new's 100 characters
        row(NAMES[6], consent_given="是", consent_method="书面", consent_on="2030-01-01"),
        row(NAMES[7], tax_no=TAX_OK, invoice_title="台州汽配", email="a@b.cn"),
        row(NAMES[8], next_followup_on="2026-12-24", industry="=2+3"),
    ]
    before = await _snapshot(world)
    report = await _dry_run(manager, workbook(rows))
    assert "共 10 行，可以导入 3 行，未通过 7 行" in report["text"]
    assert await _snapshot(world) == before  # a dry run writes no customer
    rejected = read_sheet(last_document(manager)["content"])
    assert rejected[0][:2] == ["原行号", "未通过原因"] and rejected[0][2:] == header_row()
    by_row = {r[0]: r[1] for r in rejected[1:]}
    assert sorted(by_row, key=int) == ["3", "4", "5", "6", "7", "8", "9"]
    assert "电话" in by_row["3"] and "有效" in by_row["3"]
    assert "校验" in by_row["4"]
    assert "客户来源" in by_row["5"] and "必填" in by_row["5"]
    assert "客户阶段" in by_row["6"]
    assert "规模" in by_row["7"]
    assert "100" in by_row["8"]
    assert "同意日期" in by_row["9"]
    assert last_document(manager)["params"].get("protect_content") is True
    # the owner, then the confirmation
    await manager.press("Li")
    await manager.press("导入并提交审核")
    assert "已导入 3 个客户" in manager.last_text(), manager.last_text()
    li = await staff_of(world.services.sessions, sales)
    wang = await staff_of(world.services.sessions, manager)
    async with unit_of_work(world.services.sessions) as session:
        made = (await session.exec(select(Customer).order_by(col(Customer.id)))).all()
        assert [c.name for c in made] == [NAMES[0], NAMES[7], NAMES[8]]
        assert all(c.owner_id == li.id and c.team_id == li.team_id for c in made)
        assert all(c.status == "pending" for c in made)
        assert [c.customer_no for c in made] == [f"KH-2026-00000{i}" for i in (1, 2, 3)]
        sealed = await customer_store.sealed_fields(session, world.services.keyring, made[0])
        assert sealed["phones"] == ["+8613812345678"]
        sealed = await customer_store.sealed_fields(session, world.services.keyring, made[1])
        assert sealed["tax_no"] == TAX_OK and sealed["email"] == "a@b.cn"
        assert made[2].industry == "=2+3" and str(made[2].next_followup_on) == "2026-12-24"
        assert str(made[0].next_followup_on) == "2026-12-06"  # today + class B's 14 days
        reviews = (await session.exec(select(Review))).all()
        assert sorted(r.customer_id for r in reviews) == [c.id for c in made]
        assert {r.submitted_by for r in reviews} == {wang.id}
        history = (await session.exec(select(ChangeRecord))).all()
        assert [h.action for h in history] == ["import"] * 3
        key = await vault.data_key(session, world.services.keyring, made[0].id or 0)
        assert vault.open_change(key, history[0])["phones"] == [None, ["+8613812345678"]]
        digests = (await session.exec(select(BlindIndex.kind))).all()
        assert sorted(digests) == ["phone", "tax_no"]
        actions = (await session.exec(select(AuditEntry.action))).all()
        assert actions.count("customer.import") == 3 and "import.confirm" in actions
        assert (await verify_chain(session)).ok
        # the managers' notice went through the outbox: the importer is the only manager, so
        # the admins are asked
        notices = (
            await session.exec(select(Reminder).where(Reminder.kind == "confirmation"))
        ).all()
        assert len(notices) == 1
    told = [m["text"] for m in world.telegram.sent_to(ADMIN_ID)]
    assert any("Wang 导入了 3 个客户（East），等待您审核" in t for t in told), told
    # the name index picks the imported customers up: the manager finds one by name
    await manager.send("/find 丽水生态")
    found = manager.last_message()
    assert NAMES[8] in found["text"] + str(buttons(found)), found


async def test_rejected_rows_file_neutralises_formula_text(world: World) -> None:
    manager, _sales = await _team(world)
    await _dry_run(manager, workbook([row(NAMES[0], "12345", industry='=HYPERLINK("x")')]))
    content = last_document(manager)["content"]
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    industry = header_row().index("行业") + 3
    cell = sheet.cell(row=2, column=industry)
    assert cell.value == '\'=HYPERLINK("x")' and cell.data_type == "s"


async def test_a_formula_cell_gives_its_value_never_its_text(world: World) -> None:
    manager, _sales = await _team(world)
    book = Workbook()
    sheet = book.active
    sheet.append(header_row())
    sheet.append([row(NAMES[0]).get(c) for c in import_rows.COLUMNS])
    sheet["D2"] = "=1+1"  # industry: a formula openpyxl wrote without a cached value
    out = io.BytesIO()
    book.save(out)
    await _dry_run(manager, out.getvalue())
    await manager.press("Li")
    await manager.press("导入并提交审核")
    async with unit_of_work(world.services.sessions) as session:
        made = (await session.exec(select(Customer))).one()
    assert made.industry is None  # no cached result: nothing, never "=1+1"


async def test_duplicates_within_the_file_and_against_the_archive(world: World) -> None:
    manager, sales = await _team(world)
    west = await world.member("salesperson", "West", "Zhao")
    await make_customer(world, sales, name="杭州明远机械有限公司", phones=["+8613800001111"])
    await make_customer(world, west, name="重庆火锅底料厂", phones=["+8613900002222"])
    rows = [
        row("上海浦东物流中心", "13800001111"),  # phone of an East customer: shown
        row("北京朝阳文化传媒", "13900002222"),  # phone of a West customer: hidden
        row("杭州明远机械有限公司"),  # name of an East customer
        row("广州天河电子商行", "13711112222"),
        row("深圳南山软件园", "13711112222"),  # the previous row's phone
        row("广州天河电子商行"),  # the same name as row 5
    ]
    await _dry_run(manager, workbook(rows))
    assert "可以导入 1 行，未通过 5 行" in manager.last_text()
    reasons = {r[0]: r[1] for r in read_sheet(last_document(manager)["content"])[1:]}
    assert "KH-2026-000001" in reasons["2"]
    assert "KH-2026-000002" not in reasons["3"] and "重庆" not in reasons["3"]
    assert "KH-2026-000001" in reasons["4"]
    assert "第 5 行" in reasons["6"] and "第 5 行" in reasons["7"]
    async with unit_of_work(world.services.sessions) as session:
        audited = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "customer.duplicate"))
        ).all()
    assert len(audited) == 3


async def test_all_or_nothing_a_failure_midway_writes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, _sales = await _team(world)
    await _dry_run(manager, workbook([row(n, f"1381234{i:04d}") for i, n in enumerate(NAMES)]))
    before = await _snapshot(world)
    audit_before = await _count(world, AuditEntry)
    monkeypatch.setattr(imports, "CHUNK", 3)
    real = imports._write_chunk
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk full")
        return await real(*args, **kwargs)

    monkeypatch.setattr(imports, "_write_chunk", failing)
    await manager.press("Li")
    confirm = manager.last_message()
    data = data_of(confirm, "导入并提交审核")
    await manager.press_data(confirm, data)
    assert calls == 3
    assert "出了问题" in (manager.last_answer() or "")  # the error handler's kind answer
    assert await _snapshot(world) == before
    assert await _count(world, AuditEntry) == audit_before
    async with unit_of_work(world.services.sessions) as session:
        (opened,) = (await session.exec(select(Import))).all()
    assert opened.status == "checked"
    # once the fault is gone, the same confirmation writes all ten
    monkeypatch.setattr(imports, "_write_chunk", real)
    await manager.press_data(confirm, data)
    assert "已导入 10 个客户" in manager.last_text(), manager.last_text()
    assert await _count(world, Customer) == 10


async def test_admin_approves_directly_and_owner_column_is_used(world: World) -> None:
    _manager, sales = await _team(world)
    west = await world.member("salesperson", "West", "Zhao")
    admin = world.admin()
    rows = [row(NAMES[0], owner=str(sales.id)), row(NAMES[1], owner=str(west.id))]
    await _dry_run(admin, workbook(rows))
    await admin.press("按表格里的负责人")
    assert "直接批准" in str(buttons(admin.last_message()))
    await admin.press("直接批准")
    assert "已导入并批准 2 个客户" in admin.last_text()
    owners = [(await staff_of(world.services.sessions, p)).id for p in (sales, west)]
    async with unit_of_work(world.services.sessions) as session:
        made = (await session.exec(select(Customer).order_by(col(Customer.id)))).all()
        assert [c.status for c in made] == ["approved", "approved"]
        assert [c.owner_id for c in made] == owners
        assert (await session.exec(select(Review))).all() == []


async def test_manager_cannot_import_into_another_team_or_forge_buttons(world: World) -> None:
    manager, _sales = await _team(world)
    west = await world.member("salesperson", "West", "Zhao")
    await _dry_run(manager, workbook([row(NAMES[0], owner=str(west.id)), row(NAMES[1])]))
    reasons = {r[0]: r[1] for r in read_sheet(last_document(manager)["content"])[1:]}
    assert str(west.id) in reasons["2"]  # the West owner is refused for that row
    report = manager.last_message()
    owner_data = data_of(report, "Li")
    assert "Zhao" not in str(buttons(report))
    zhao = await staff_of(world.services.sessions, west)
    forged = owner_data.rsplit(":", 1)[0] + f":{zhao.id}"
    await manager.press_data(report, forged)
    assert manager.last_answer() and "没有权限" in manager.last_answer()
    # a manager may not approve directly, even with forged data
    await manager.press("Li")
    confirm = manager.last_message()
    direct = data_of(confirm, "导入并提交审核").replace("im:r:", "im:a:")
    await manager.press_data(confirm, direct)
    assert "没有权限" in (manager.last_answer() or "")
    # another manager pressing this manager's buttons gets nothing
    other = await world.member("manager", "East", "Sun")
    await other.press_data(confirm, data_of(confirm, "导入并提交审核"))
    assert await _count(world, Customer) == 0
    async with unit_of_work(world.services.sessions) as session:
        denied = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "access.denied"))
        ).all()
    assert [(e.entity, e.actor_telegram_id) for e in denied] == [("import", other.id)]
    await manager.press("导入并提交审核", confirm)
    assert await _count(world, Customer) == 1


async def test_two_confirmations_at_once_import_once(world: World) -> None:
    manager, _sales = await _team(world)
    await _dry_run(manager, workbook([row(n) for n in NAMES[:4]]))
    await manager.press("Li")
    confirm = manager.last_message()
    data = data_of(confirm, "导入并提交审核")
    await asyncio.gather(manager.press_data(confirm, data), manager.press_data(confirm, data))
    assert await _count(world, Customer) == 4
    texts = [m["text"] for m in manager.telegram.sent_to(manager.id)[-3:]]
    assert sum("已导入 4 个客户" in t for t in texts) == 1
    # a third, later press is stale
    await manager.press_data(confirm, data)
    assert await _count(world, Customer) == 4


async def test_restart_between_dry_run_and_confirmation(world: World) -> None:
    manager, _sales = await _team(world)
    await _dry_run(manager, workbook([row(n) for n in NAMES[:2]]))
    report = manager.last_message()
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    manager = world.person(manager.id, "Wang")
    await manager.press("Li", report)
    await manager.press("导入并提交审核")
    assert "已导入 2 个客户" in manager.last_text()


async def test_the_archive_changing_after_the_dry_run_writes_nothing(world: World) -> None:
    manager, sales = await _team(world)
    await _dry_run(manager, workbook([row(NAMES[0], "13812340000"), row(NAMES[1])]))
    await manager.press("Li")
    confirm = manager.last_message()
    await make_customer(world, sales, name="上海某某", phones=["+8613812340000"])
    await manager.press("导入并提交审核", confirm)
    assert "档案在试运行之后有了变化" in manager.last_text()
    assert await _count(world, Customer) == 1  # only the one made meanwhile
    await manager.press("Li")
    await manager.press("导入并提交审核")
    assert "已导入 1 个客户" in manager.last_text()


async def test_maximum_length_values_are_imported_and_fit_telegram(world: World) -> None:
    manager = await world.member("manager", "East", "王" * 60)
    await world.member("salesperson", "East", "李" * 64)
    long_row = row(
        "名" * 100,
        "13812345678",
        short_name="简" * 30,
        industry="业" * 50,
        region="区" * 50,
        address="址" * 200,
        profile="介" * 1000,
        trade_notes="易" * 1000,
    )
    await _dry_run(manager, workbook([long_row]))
    await manager.press("李")
    await manager.press("导入并提交审核")
    assert "已导入 1 个客户" in manager.last_text()
    async with unit_of_work(world.services.sessions) as session:
        made = (await session.exec(select(Customer))).one()
    assert made.name == "名" * 100 and made.profile == "介" * 1000


async def test_a_deactivated_manager_confirms_nothing(world: World) -> None:
    from storage import staff as staff_store

    manager, _sales = await _team(world)
    await _dry_run(manager, workbook([row(NAMES[0])]))
    await manager.press("Li")
    confirm = manager.last_message()
    wang = await staff_of(world.services.sessions, manager)
    async with unit_of_work(world.services.sessions) as session:
        await staff_store.deactivate(session, actor=None, staff_id=wang.id or 0)
    await manager.press_data(confirm, data_of(confirm, "导入并提交审核"))
    assert await _count(world, Customer) == 0


async def test_an_old_import_takes_no_document(world: World) -> None:
    from datetime import timedelta

    manager, _sales = await _team(world)
    await manager.send("/import")
    later = world.services.clock() + imports.OPEN_FOR + timedelta(minutes=1)
    world.services.clock = lambda: later
    await manager.send_file(workbook([row(NAMES[0])]))
    assert "试运行" not in manager.last_text()
    async with unit_of_work(world.services.sessions) as session:
        (opened,) = (await session.exec(select(Import))).all()
    assert opened.status == "awaiting" and opened.rows == 0


async def test_many_owners_are_paged_and_fit_telegram(world: World) -> None:
    manager = await world.member("manager", "East", "Wang")
    for n in range(20):
        await world.member("salesperson", "East", f"{n:02d}" + "销" * 62)
    await _dry_run(manager, workbook([row(NAMES[0])]))
    report = manager.last_message()
    labels = [text for text, _ in buttons(report)]
    assert "1/3" in labels and "›" in labels
    await manager.press("›", report)
    page = manager.last_message()
    assert any(text.startswith("10") for text, _ in buttons(page))
    await manager.press("10", page)
    await manager.press("导入并提交审核")
    assert "已导入 1 个客户" in manager.last_text()
