"""/import given files that are no import: each gets a clear answer and changes nothing.

Not an XLSX (a text file renamed), wrong or missing headers, a 100 MB file (refused by its
declared size, before any download), a zip bomb (refused by its central directory before
openpyxl opens it), too many rows, an empty file, a file that changed between the dry run and
the confirmation; and the fake Telegram's own rules for files (unknown ids, the 20 MB limit).
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook
from sqlmodel import func, select

from conversations import spreadsheet
from storage.db import unit_of_work
from storage.models import Customer, Import
from tests.auxil.fake_telegram import TOKEN
from tests.auxil.import_helpers import NAMES, header_row, row, workbook
from tests.auxil.world import World


async def _manager(world: World) -> Any:
    manager = await world.member("manager", "East", "Wang")
    await world.member("salesperson", "East", "Li")
    await manager.send("/import")
    return manager


async def _nothing_written(world: World) -> None:
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(func.count()).select_from(Customer))).one() == 0
        (opened,) = (await session.exec(select(Import))).all()
    assert opened.status == "awaiting"  # still waiting for a good file


def _downloads(world: World) -> list[str]:
    return [name for name, _ in world.telegram.calls if name in ("getFile", "download")]


async def test_a_text_file_renamed_xlsx_is_refused(world: World) -> None:
    manager = await _manager(world)
    await manager.send_file("名称,电话\n杭州明远,13812345678\n".encode(), "customers.xlsx")
    assert "不是 Excel" in manager.last_text()
    await _nothing_written(world)


async def test_wrong_and_missing_headers_are_refused(world: World) -> None:
    manager = await _manager(world)
    await manager.send_file(workbook([row(NAMES[0])], headers=["名字", "电话号码", "备注"]))
    assert "模板没有的列" in manager.last_text()
    columns = ("name", "phones")
    await manager.send_file(workbook([row(NAMES[0])], columns=columns))
    text = manager.last_text()
    assert "缺少必填列" in text and "客户类型" in text and "客户来源" in text
    repeated = [*header_row(), header_row()[1]]
    await manager.send_file(workbook([row(NAMES[0])], headers=repeated))
    assert "重复的列" in manager.last_text()
    await _nothing_written(world)


async def test_a_100_mb_file_is_refused_before_downloading(world: World) -> None:
    manager = await _manager(world)
    await manager.send_file(b"PK", "huge.xlsx", size=100 * 1024 * 1024)
    assert "文件太大" in manager.last_text()
    assert _downloads(world) == []
    await _nothing_written(world)


async def test_a_zip_bomb_is_refused_before_openpyxl_opens_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(30):
                member.write(b"\0" * (1024 * 1024))
    bomb = out.getvalue()
    assert len(bomb) < 100_000  # 30 MB inflated from a few tens of kB
    opened: list[Any] = []
    monkeypatch.setattr(spreadsheet, "load_workbook", lambda *a, **k: opened.append(a))
    manager = await _manager(world)
    await manager.send_file(bomb, "bomb.xlsx")
    assert "文件太大" in manager.last_text()
    assert opened == []
    await _nothing_written(world)


async def test_too_many_rows_and_an_empty_file_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spreadsheet, "MAX_ROWS", 3)
    manager = await _manager(world)
    await manager.send_file(workbook([row(n) for n in NAMES[:4]]))
    assert "最多导入 3 行" in manager.last_text()
    empty = io.BytesIO()
    Workbook().save(empty)
    await manager.send_file(empty.getvalue())
    assert "文件是空的" in manager.last_text()
    await manager.send_file(b"", "nothing.xlsx")
    assert "文件是空的" in manager.last_text()
    await _nothing_written(world)


async def test_a_file_changed_after_the_dry_run_writes_nothing(world: World) -> None:
    manager = await _manager(world)
    await manager.send_file(workbook([row(n) for n in NAMES[:2]]))
    await manager.press("Li")
    confirm = manager.last_message()
    # the file behind the same id is not the one the dry run checked (a checksum differs)
    file_id = next(iter(world.telegram.files))
    path, _content, _size = world.telegram.files[file_id]
    other = workbook([row(n) for n in NAMES[2:5]])
    world.telegram.files[file_id] = (path, other, len(other))
    await manager.press("导入并提交审核", confirm)
    assert "和试运行时检查的不一样" in manager.last_text()
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(func.count()).select_from(Customer))).one() == 0


async def test_the_fake_telegram_serves_files_as_the_bot_api_does(world: World) -> None:
    """getFile: an unknown id is a 400, over 20 MB a 400; downloads only under the bot's file
    URL with its token (bot.app.file_url of TELEGRAM_BASE_URL)."""
    telegram = world.telegram
    status, body = await telegram.do_request(
        "https://api.telegram.org/bot" + TOKEN + "/getFile", "POST", None
    )
    assert status == 400 and b"invalid file_id" in body
    document = telegram.add_file(b"x", "big.xlsx", size=21 * 1024 * 1024)
    assert telegram._get_file({"file_id": document["file_id"]})[0] == 400
    small = telegram.add_file(b"content", "small.xlsx")
    found = telegram._get_file({"file_id": small["file_id"]})
    url = f"https://api.telegram.org/file/bot{TOKEN}/{found['file_path']}"
    assert await telegram.do_request(url, "GET") == (200, b"content")
    elsewhere = f"https://example.org/file/bot{TOKEN}/{found['file_path']}"
    assert (await telegram.do_request(elsewhere, "GET"))[0] == 404
    wrong_token = f"https://api.telegram.org/file/bot1:x/{found['file_path']}"
    assert (await telegram.do_request(wrong_token, "GET"))[0] == 404


async def test_a_custom_bot_api_server_serves_the_download(
    world: World, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TELEGRAM_BASE_URL on a self-hosted Bot API server, files come from its /file/bot."""
    from bot.settings import Settings
    from tests.auxil.fake_telegram import FakeTelegram
    from tests.auxil.world import start_app

    custom = Settings(  # type: ignore[call-arg]
        _env_file=None,
        **{
            **services.settings.model_dump(),
            "TELEGRAM_BASE_URL": "http://botapi.internal:8081/bot",
        },
    )
    services.settings = custom
    telegram = FakeTelegram(file_base="http://botapi.internal:8081/file/bot")
    app = await start_app(services, telegram)
    try:
        manager = await world.member("manager", "East", "Wang")
        await world.member("salesperson", "East", "Li")
        manager.app, manager.telegram = app, telegram
        await manager.send("/import")
        await manager.send_file(workbook([row(NAMES[0])]))
        assert "可以导入 1 行" in manager.last_text()
    finally:
        await app.shutdown()


async def test_a_dry_run_takes_one_duplicate_look_up_of_the_day(world: World) -> None:
    """A file's look-up is one of DUPLICATE_CHECKS_PER_DAY, whatever its size; once the day's
    are used up, nothing is looked up and nothing is checked."""
    services = world.services
    services.settings = services.settings.model_copy(update={"DUPLICATE_CHECKS_PER_DAY": 1})
    manager = await _manager(world)
    await manager.send_file(workbook([row(n) for n in NAMES[:5]]))
    assert "可以导入 5 行" in manager.last_text()
    await manager.send_file(workbook([row(NAMES[5])]))
    assert "重复检查次数（1 次）已用完" in manager.last_text()
    async with unit_of_work(world.services.sessions) as session:
        assert (await session.exec(select(func.count()).select_from(Customer))).one() == 0
