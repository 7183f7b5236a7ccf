"""The command menu per person: each member sees the commands their role may use.

Telegram shows a chat's own menu (`BotCommandScopeChat`) before the bot's default one, so the
default menu is the stranger's (/start and /help) and every active member gets a menu of their
own, in the language they chose, listing what /help lists (`commands.commands_for`, asked of the
same predicates storage refuses with). A deactivated member's own menu is deleted: they fall
back to the stranger's.

Menus follow the records, never the other way round, so no change can be lost:
- right after a change made in the chat (an invite accepted, a role changed, a deactivation, a
  new language) the person's menu is set again (`refresh`);
- whenever a member writes, the gate checks that the menu this process last set for them is
  still the one their record asks for (`ensure`, a dictionary look-up on most updates), which
  catches changes made on the command line and the first message after a restart; a menu to
  set then is set in the background, so no answer waits for Telegram's setMyCommands (after
  a restart, every person's first update did), one person's menu calls in their order;
- a repeating job (`sync_all`, soon after start and every SYNC_SECONDS) walks everyone, paced,
  so a person deactivated or promoted on the command line sees it without writing first.
Telegram errors (a person who blocked the bot) are logged and never stop anything.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.commands import commands_for
from bot.context import MENU_REFRESH, Services
from bot.i18n import LANGUAGES, pick_language, translate
from storage.db import reading
from storage.models import Staff

log = logging.getLogger(__name__)
STRANGER_COMMANDS = ("start", "help")
MENUS_KEY = "command_menus"  # bot_data: what this process last set for each person
PENDING_KEY = "command_menus_pending"  # bot_data: menus being set in the background
CHECKED_KEY = "command_menus_checked"  # bot_data: the records last found up to date
SYNC_JOB = "command_menus"
SYNC_SECONDS = 300  # how often everyone's menu is compared with their record
FIRST_SYNC_SECONDS = 10
PACE_SECONDS = 0.1  # between two menus set by the sync: at most ten a second
SYNC_SLICE = 500  # staff rows read at a time

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


@dataclass(frozen=True)
class Menu:
    """What one chat's menu lists, in which language; no commands: the stranger's menu."""

    commands: tuple[str, ...] = ()
    language: str | None = None


STRANGER = Menu()


def menu_of(staff: Staff | None, default_language: str) -> Menu:
    """The menu a person's record asks for."""
    if staff is None or not staff.active:
        return STRANGER
    language = pick_language(staff.language, None, default_language)
    return Menu(commands_for(staff), language)


def bot_commands(commands: tuple[str, ...], language: str) -> list[BotCommand]:
    return [BotCommand(c, translate(language, f"command.{c}")) for c in commands]


async def set_stranger_menu(bot: Bot, default_language: str) -> None:
    """The default menu, for everyone without one of their own: /start and /help."""
    for language in LANGUAGES:
        menu = bot_commands(STRANGER_COMMANDS, language)
        if language == default_language:
            await bot.set_my_commands(menu)
        await bot.set_my_commands(menu, language_code=language)


def _memo(application: AnyApplication) -> dict[int, tuple[Menu, bool]]:
    """telegram id → the menu last sent for them, and whether Telegram refused it."""
    memo = application.bot_data.get(MENUS_KEY)
    if not isinstance(memo, dict):
        memo = application.bot_data[MENUS_KEY] = {}
    return memo


async def _apply(bot: Bot, telegram_id: int, menu: Menu) -> bool | None:
    """Set (or delete) one chat's menu. True when done, False when Telegram will not take it
    for this chat (blocked, never started: trying again soon would not help), None when it
    may work later (a network failure)."""
    scope = BotCommandScopeChat(telegram_id)
    try:
        if menu.language is None:
            await bot.delete_my_commands(scope=scope)
        else:
            await bot.set_my_commands(bot_commands(menu.commands, menu.language), scope=scope)
    except (BadRequest, Forbidden) as refused:
        log.warning("menu of %s not set: %s", telegram_id, type(refused).__name__)
        return False
    except TelegramError as failure:
        log.warning("menu of %s not set (will retry): %s", telegram_id, type(failure).__name__)
        return None
    return True


async def _bring_up_to_date(
    application: AnyApplication, telegram_id: int, menu: Menu, *, writing: bool = False
) -> bool:
    """Set the menu unless this process already set exactly it; True if a call was made.

    A chat Telegram refused (the person blocked the bot) is not asked again for the same
    menu by the sync, only once they write (`writing`): then they can be reached again."""
    memo = _memo(application)
    last = memo.get(telegram_id)
    if last is not None and last[0] == menu and not (writing and last[1]):
        return False
    done = await _apply(application.bot, telegram_id, menu)
    if done is not None:
        memo[telegram_id] = (menu, not done)
    return True


def _pending(application: AnyApplication) -> dict[int, tuple[Menu, asyncio.Task[None]]]:
    """telegram id → the menu being set for them in the background, and its task."""
    pending = application.bot_data.get(PENDING_KEY)
    if not isinstance(pending, dict):
        pending = application.bot_data[PENDING_KEY] = {}
    return pending


def _checked(application: AnyApplication) -> dict[int, tuple[Staff, str | None, object]]:
    """telegram id → the record (object), its language and the memo entry last found to match:
    most updates carry the gate's same cached record, whose menu need not be worked out again."""
    checked = application.bot_data.get(CHECKED_KEY)
    if not isinstance(checked, dict):
        checked = application.bot_data[CHECKED_KEY] = {}
    return checked


def ensure(application: AnyApplication, staff: Staff) -> None:
    """The gate's check on every update of a known person: usually nothing to do; otherwise
    the menu is set in the background, after any call for them still under way."""
    telegram_id = staff.telegram_id
    memo, pending = _memo(application), _pending(application)
    checked = _checked(application)
    last = memo.get(telegram_id)
    seen = checked.get(telegram_id)
    if (
        seen is not None
        and seen[0] is staff  # the gate's cached record: a staff change brings a new one
        and seen[1] == staff.language
        and seen[2] is last
        and last is not None
        and telegram_id not in pending
    ):
        return  # this very record was found up to date: nothing to work out again
    services: Services = application.bot_data["services"]
    menu = menu_of(staff, services.settings.DEFAULT_LANGUAGE)
    if last is not None and last == (menu, False) and telegram_id not in pending:
        checked[telegram_id] = (staff, staff.language, last)
        return
    under_way = pending.get(telegram_id)
    if under_way is not None and under_way[0] == menu:
        return
    before = under_way[1] if under_way is not None else None

    async def set_it() -> None:
        if before is not None:
            await asyncio.wait([before])
        try:
            await _bring_up_to_date(application, telegram_id, menu, writing=True)
        except Exception:  # a background task: nobody else would hear of it
            log.exception("menu of %s not set", telegram_id)

    task = asyncio.get_running_loop().create_task(set_it(), name="command-menu")
    pending[telegram_id] = (menu, task)

    def done(finished: asyncio.Task[None]) -> None:
        if pending.get(telegram_id, (None, None))[1] is finished:
            del pending[telegram_id]

    task.add_done_callback(done)


async def settle(application: AnyApplication) -> None:
    """Wait until the menus being set in the background are (tests; a clean stop)."""
    pending = _pending(application)
    while pending:
        await asyncio.wait([task for _menu, task in list(pending.values())])


async def refresh(application: AnyApplication, telegram_id: int) -> None:
    """Set a person's menu from their record as it is now committed (after a change), after
    any call for them still under way in the background."""
    services: Services = application.bot_data["services"]
    under_way = _pending(application).get(telegram_id)
    if under_way is not None:
        await asyncio.wait([under_way[1]])
    async with reading(services.sessions) as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).first()
    if staff is None:
        return
    await _bring_up_to_date(
        application, telegram_id, menu_of(staff, services.settings.DEFAULT_LANGUAGE)
    )


async def sync_all(application: AnyApplication) -> int:
    """Compare everyone's menu with their record, paced; how many menus were set."""
    services: Services = application.bot_data["services"]
    default = services.settings.DEFAULT_LANGUAGE
    made, last = 0, 0
    while True:
        async with reading(services.sessions) as session:
            rows = (
                await session.exec(
                    select(Staff)
                    .where(col(Staff.id) > last)
                    .order_by(col(Staff.id))
                    .limit(SYNC_SLICE)
                )
            ).all()
            wanted = [(s.telegram_id, menu_of(s, default)) for s in rows]
        for telegram_id, menu in wanted:
            if await _bring_up_to_date(application, telegram_id, menu):
                made += 1
                await asyncio.sleep(PACE_SECONDS)
        if len(rows) < SYNC_SLICE:
            return made
        last = rows[-1].id or last


async def _sync_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        await sync_all(context.application)
    except SQLAlchemyError as failure:  # the database was busy or gone: the next run retries
        log.warning("command menu sync failed: %s", type(failure).__name__)


def install(application: AnyApplication) -> None:
    """Let handlers refresh a menu after a change; sync everyone soon and then now and then."""
    application.bot_data[MENU_REFRESH] = lambda telegram_id: refresh(application, telegram_id)
    queue = application.job_queue
    if queue is None or queue.get_jobs_by_name(SYNC_JOB):
        return
    queue.run_repeating(
        _sync_job,
        interval=SYNC_SECONDS,
        first=FIRST_SYNC_SECONDS,
        name=SYNC_JOB,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
