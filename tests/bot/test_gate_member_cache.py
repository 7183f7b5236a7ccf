"""The gate's member cache (storage.staff.MemberCache): the staff row is not read again while
nothing changed, and no change to staff, made here or by another process (the CLI in a real
subprocess, against the same database), ever lets a deactivated or demoted person through.

Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.commands import commands_for
from bot.i18n import translate
from storage import quick_lane
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import StaffChanges
from tests.auxil.fake_telegram import Person
from tests.auxil.world import World
from tests.e2e.support import run_cli

STAFF_ROW = re.compile(r"\bFROM staff\b")  # the staff table, not staff_changes
REFUSED = translate("zh", "access.deactivated")


@contextlib.contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the engine runs inside the block, and SQLite's quick lane beside it."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    lane = quick_lane.of_engine(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        with lane.watching(seen.append) if lane is not None else contextlib.nullcontext():
            yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


def staff_reads(seen: list[str]) -> int:
    return sum(1 for s in seen if STAFF_ROW.search(s) and s.lstrip().upper().startswith("SELECT"))


async def _settled(person: Person) -> None:
    """Updates until the gate's own writes (language, last seen) are behind it: from then on
    the member is served from the cache."""
    for _ in range(3):
        await person.send("/help")


def _cli(database_url: str, master_key_text: str, tmp_path: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path),
        "ENCRYPTION_KEYS": master_key_text,
    }
    done = run_cli(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _menu_of(world: World, telegram_id: int, before: int) -> list[str] | None:
    """The commands last set for the person's own menu since call number `before`."""
    menus = [
        params
        for name, params in world.telegram.calls[before:]
        if name == "setMyCommands" and str(telegram_id) in str(params.get("scope"))
    ]
    if not menus:
        return None
    commands = menus[-1]["commands"]
    if isinstance(commands, str):
        commands = json.loads(commands)
    return [c["command"] for c in commands]


async def test_a_settled_member_is_not_read_again_while_nothing_changed(
    world: World, engine: AsyncEngine
) -> None:
    sales = await world.member()
    await _settled(sales)
    with statements(engine) as seen:
        replies = await sales.send("/help")
    assert replies and replies[-1]["text"] != REFUSED
    assert staff_reads(seen) == 0, seen  # the cache answered
    assert any("staff_changes" in s for s in seen)  # after checking the stamp
    # a change to anyone's staff row moves the stamp: the next update reads the row again
    other = await world.member(name="Wang")
    with statements(engine) as seen:
        await sales.send("/help")
    assert staff_reads(seen) >= 1
    assert other.id != sales.id


async def test_deactivated_here_is_refused_on_the_next_update(world: World) -> None:
    sales = await world.member()
    await sales.send("/new")
    await _settled(sales)
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, sales.id)
        assert staff is not None
        await staff_store.deactivate(session, actor=None, staff_id=staff.id or 0)
    replies = await sales.send("/help")
    assert [m["text"] for m in replies] == [REFUSED]


async def test_deactivated_by_the_cli_in_another_process_is_refused_on_the_next_update(
    world: World, database_url: str, master_key_text: str, tmp_path: Path
) -> None:
    sales = await world.member()
    await sales.send("/new")
    await sales.press("企业")  # a draft underway, its question's buttons on screen
    await _settled(sales)
    out = await asyncio.to_thread(
        _cli, database_url, master_key_text, tmp_path, "staff", "deactivate", f"@{sales.id}"
    )
    assert out
    replies = await sales.send("/help")
    assert [m["text"] for m in replies] == [REFUSED]
    replies = await sales.send("杭州明远机械有限公司")  # an answer to the open question
    assert [m["text"] for m in replies] == [REFUSED]


async def test_a_role_changed_by_the_cli_counts_from_the_next_update(
    world: World, database_url: str, master_key_text: str, tmp_path: Path
) -> None:
    boss = await world.member(role="manager", name="Zhou")
    await _settled(boss)
    await asyncio.to_thread(
        _cli,
        database_url,
        master_key_text,
        tmp_path,
        "staff",
        "role",
        f"@{boss.id}",
        "salesperson",
    )
    before = len(world.telegram.calls)
    await boss.send("/help")
    async with unit_of_work(world.services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, boss.id)
        assert staff is not None and staff.role == "salesperson"
    wanted = list(commands_for(staff))
    assert _menu_of(world, boss.id, before) == wanted  # the gate saw the new role at once


async def test_an_unreadable_stamp_refuses_the_update(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sales = await world.member(language="en")
    await _settled(sales)

    async def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT staff_changes.stamp", (), Exception("database is locked"))

    def lane_locked(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    # SQLite's quick lane fails over to the reading unit, whose stamp read fails: refused;
    # PostgreSQL reads the stamp alone (storage.db.alone), and that fails: refused
    monkeypatch.setattr(quick_lane.QuickLane, "_conn", lane_locked)
    monkeypatch.setattr(staff_store, "alone", locked)
    monkeypatch.setattr(staff_store, "staff_stamp", locked)
    replies = await sales.send("/help")
    assert [m["text"] for m in replies] == [translate("en", "error.try_again")]


async def test_without_a_stamp_nothing_is_cached(world: World, engine: AsyncEngine) -> None:
    sales = await world.member()
    await _settled(sales)
    async with unit_of_work(world.services.sessions) as session:
        await session.exec(delete(StaffChanges))
    for _ in range(2):
        with statements(engine) as seen:
            await sales.send("/help")
        assert staff_reads(seen) >= 1
