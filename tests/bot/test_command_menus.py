"""The command menu per role: each person sees what they may use, and it follows their record.

Salespeople see neither /review nor /invite, managers and admins see theirs, strangers and
deactivated staff only /start and /help; the menu follows an invite, a role change made in the
chat or on the command line, a deactivation and a change of language.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot import menus, scheduler
from bot.commands import commands_for
from bot.i18n import translate
from storage import staff as staff_store
from storage.db import SessionFactory, unit_of_work
from storage.models import Staff
from tests.auxil.cli_helpers import run_cli
from tests.auxil.customer_factory import staff_of
from tests.auxil.fake_telegram import FakeTelegram, Person
from tests.auxil.world import ADMIN_ID, World, start_app

STRANGER = ["start", "help"]
SALES_ONLY_NOT = {"review", "invite", "staff", "handover", "pipl", "testreminder"}


def shown(world: World, person: Person, language: str = "zh") -> list[str]:
    return world.telegram.menu_shown(person.id, language)


async def join_as_salesperson(world: World, manager: Person, newcomer: Person) -> None:
    await manager.send("/invite")
    await manager.press("业务员")
    await manager.press("East")
    token = manager.last_text().split("start=")[1].split()[0]
    await newcomer.send(f"/start {token}")


async def test_strangers_see_only_start_and_help_in_both_languages(world: World) -> None:
    stranger = world.person(123_456, "Nosy", "en")
    assert shown(world, stranger, "en") == STRANGER
    assert shown(world, stranger, "zh") == STRANGER
    assert shown(world, stranger, "fr") == STRANGER  # the default language's
    assert world.telegram.menus[("default", "en")] == STRANGER
    await stranger.send("/help")
    assert shown(world, stranger, "en") == STRANGER  # a stranger writing changes nothing


async def test_a_newcomer_who_accepts_an_invite_gets_the_salesperson_menu(world: World) -> None:
    manager = await world.member("manager", "East", "Wang")
    newcomer = world.person(555_301, "Xiao Wang")
    await join_as_salesperson(world, manager, newcomer)
    menu = shown(world, newcomer)
    assert menu[:5] == ["new", "visit", "complaint", "find", "my"]
    assert not SALES_ONLY_NOT & set(menu)
    assert "help" in menu and "lang" in menu
    assert world.telegram.menu_descriptions(newcomer.id)["new"] == translate("zh", "command.new")
    # the manager, seen by the gate, has theirs
    assert {"review", "invite"} <= set(shown(world, manager))


async def test_each_role_sees_what_help_offers_it(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    manager = await world.member("manager", "East", "Wang")
    admin = world.admin()
    for person in (sales, manager, admin):
        await person.send("/help")
        row = await staff_of(world.services.sessions, person)
        assert shown(world, person) == list(commands_for(row))
        assert all(f"/{c} " in person.last_text() for c in shown(world, person))
    assert "review" not in shown(world, sales) and "invite" not in shown(world, sales)
    assert {"review", "invite", "report"} <= set(shown(world, manager))
    assert {"review", "invite", "staff", "pipl"} <= set(shown(world, admin))


async def test_promotion_and_demotion_in_the_chat_change_the_menu_at_once(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await li.send("/help")
    assert "review" not in shown(world, li)
    await admin.send("/staff")
    await admin.press("Li")
    await admin.press("Change role")
    await admin.press("Manager")
    await admin.press("Confirm")
    assert {"review", "invite"} <= set(shown(world, li))  # before Li writes again
    await admin.send("/staff")
    await admin.press("Li")
    await admin.press("Change role")
    await admin.press("Salesperson")
    await admin.press("Confirm")
    assert "review" not in shown(world, li) and "invite" not in shown(world, li)


async def test_deactivation_in_the_chat_puts_back_the_stranger_menu(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    await li.send("/help")
    assert "new" in shown(world, li)
    await admin.send("/staff")
    await admin.press("Li")
    await admin.press("Deactivate")
    await admin.press("Confirm")
    assert shown(world, li) == STRANGER
    assert (f"chat:{li.id}", "") not in world.telegram.menus
    await li.send("/help")  # refused, and still the stranger's menu
    assert shown(world, li) == STRANGER


async def test_a_language_change_sets_the_menu_in_the_new_language(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    await sales.send("/help")
    assert world.telegram.menu_descriptions(sales.id)["new"] == translate("zh", "command.new")
    await sales.send("/lang")
    await sales.press("English")
    assert world.telegram.menu_descriptions(sales.id)["new"] == translate("en", "command.new")
    assert shown(world, sales, "zh") == shown(
        world, sales, "en"
    )  # the bot's language, not the app's


async def test_a_member_who_blocked_the_bot_does_not_stop_anything(world: World) -> None:
    admin = world.admin("en")
    li = await world.member("salesperson", name="Li")
    world.telegram.unreachable.add(li.id)
    await admin.send("/staff")
    await admin.press("Li")
    await admin.press("Change role")
    await admin.press("Manager")
    await admin.press("Confirm")
    assert admin.last_text().startswith("✅ Li is now a Manager")
    assert await menus.sync_all(world.app) == 0  # a chat Telegram refused is not asked again
    world.telegram.unreachable.clear()
    assert "review" not in shown(world, li)
    await li.send("/help")  # writing again: reachable again, and the menu is set
    assert {"review", "invite"} <= set(shown(world, li))


async def test_a_network_failure_is_retried_by_the_next_sync(world: World) -> None:
    li = await world.member("salesperson", name="Li")
    world.telegram.fail_methods.add("setMyCommands")
    await li.send("/help")  # answered all the same
    assert "/new" in li.last_text()
    world.telegram.fail_methods.clear()
    assert shown(world, li) == STRANGER
    assert await menus.sync_all(world.app) >= 1
    assert "new" in shown(world, li)


async def test_command_line_changes_reach_the_menu_through_the_sync(
    world: World, cli_env: Path, session_factory: SessionFactory
) -> None:
    li = await world.member("salesperson", name="Li")
    wu = await world.member("salesperson", name="Wu")
    await li.send("/help")
    await wu.send("/help")
    li_row = await staff_of(world.services.sessions, li)
    assert await run_cli("staff", "role", str(li_row.id), "manager") == 0
    assert await run_cli("staff", "deactivate", f"@{wu.id}") == 0
    assert "review" not in shown(world, li)  # the bot has not looked yet
    assert await menus.sync_all(world.app) == 3  # Li, Wu, and the admin who never wrote
    assert {"review", "invite"} <= set(shown(world, li))
    assert shown(world, wu) == STRANGER
    assert await menus.sync_all(world.app) == 0  # nothing changed since: no calls
    assert await run_cli("staff", "role", str(li_row.id), "salesperson", "--team", "East") == 0
    assert await run_cli("staff", "reactivate", f"@{wu.id}", "--team", "East") == 0
    await li.send("/help")  # writing is enough: the gate notices the demotion at once
    assert "review" not in shown(world, li) and "new" in shown(world, li)
    assert await menus.sync_all(world.app) == 1  # Wu, back with the salesperson menu
    assert "new" in shown(world, wu) and "review" not in shown(world, wu)


async def test_after_a_restart_everyones_menu_is_set_again_paced(world: World) -> None:
    sales = await world.member("salesperson", "East", "Li")
    gone = await world.member("salesperson", "East", "Gone")
    async with unit_of_work(world.services.sessions) as session:
        row = await staff_store.staff_by_telegram_id(session, gone.id)
        assert row is not None
        await staff_store.deactivate(session, actor=None, staff_id=row.id or 0)
    await world.app.shutdown()
    world.app = await start_app(world.services, world.telegram)
    assert await menus.sync_all(world.app) == 3  # the admin, Li, and Gone's menu deleted
    assert "new" in shown(world, sales)
    assert shown(world, gone) == STRANGER
    assert "staff" in world.telegram.menu_shown(ADMIN_ID, "zh")
    async with unit_of_work(world.services.sessions) as session:
        count = len((await session.exec(select(Staff))).all())
    assert count == 3
    assert menus.SYNC_JOB in [j.name for j in world.app.job_queue.jobs()]


class MenusHeld(FakeTelegram):
    """Telegram taking a chat's own menu only once `release` is set (a slow setMyCommands)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def do_request(self, url: str, method: str, request_data: Any = None, **kw: Any) -> Any:
        params = request_data.parameters if request_data is not None else {}
        scope = params.get("scope") or {}
        if isinstance(scope, str):
            scope = json.loads(scope)
        if url.endswith("/setMyCommands") and scope.get("type") == "chat":
            await self.release.wait()
        return await super().do_request(url, method, request_data, **kw)


def chat_menus_set(telegram: FakeTelegram, person: Person) -> list[list[str]]:
    """The commands of each setMyCommands call for the person's own chat, in order."""
    sets = []
    for name, params in telegram.calls:
        scope = params.get("scope") or {}
        if name == "setMyCommands" and scope.get("chat_id") == person.id:
            sets.append([command["command"] for command in params["commands"]])
    return sets


async def test_an_answer_never_waits_for_telegram_to_take_the_menu(world: World) -> None:
    li = await world.member("salesperson", name="Li")
    await world.app.shutdown()
    telegram = MenusHeld()
    world.app = await start_app(world.services, telegram)  # a restart: nobody's menu is known
    li = Person(world.app, telegram, li.id, "Li")
    li.settle = False  # settling would wait for the held menu
    await asyncio.wait_for(li.send("/help"), 5)  # answered while Telegram holds the menu
    assert "/new" in li.last_text()
    await asyncio.wait_for(li.send("/help"), 5)  # again: no second call for the same menu
    assert telegram.menu_shown(li.id, "zh") == STRANGER  # not yet taken
    async with unit_of_work(world.services.sessions) as session:  # promoted on the command line
        row = await staff_store.staff_by_telegram_id(session, li.id)
        assert row is not None
        row.role = "manager"
    await asyncio.wait_for(li.send("/help"), 5)  # the gate sees the new role: a second menu
    assert "/review" in li.last_text()
    telegram.release.set()
    await scheduler.settle(world.app)
    menus_set = chat_menus_set(telegram, li)
    assert len(menus_set) == 2 and "review" not in menus_set[0]  # in the order asked
    assert {"review", "invite"} <= set(telegram.menu_shown(li.id, "zh"))
    await li.send("/help")  # nothing more to set
    await scheduler.settle(world.app)
    assert len(chat_menus_set(telegram, li)) == 2
