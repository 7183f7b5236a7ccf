"""The application and its one routing table."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot import commands, menus, metrics, scheduler
from bot.context import BotContext, Services
from bot.errors import on_error
from bot.gate import recognise
from bot.rate_limits import SharedRateLimiter
from bot.update_order import PerPersonProcessor, default_concurrency
from conversations import callback_data as buttons
from conversations import (
    card,
    complaint,
    edit,
    export,
    find,
    handover,
    importing,
    inline,
    key_persons,
    life_cycle,
    pipl,
    pool,
    reminders,
    report,
    review,
    review_groups,
    runner,
    staff,
    visit,
)
from conversations import checkin as checkin_flow
from conversations import reassign as reassign_flow
from conversations import teams as teams_led
from conversations import today as today_plan
from storage import search
from storage import staff as staff_store
from storage.db import reading, unit_of_work

log = logging.getLogger(__name__)
GATE_GROUP = -1
WARM_UP_TASK = "search_warm_up"  # the background build of the name index (kept referenced)
# What the bot asks Telegram for, polling or webhook: every kind a handler below takes.
UPDATE_KINDS = ["message", "edited_message", "callback_query", "inline_query", "my_chat_member"]


def file_url(base_url: str) -> str:
    """Telegram serves files under /file/bot<token>; a self-hosted server does the same."""
    return base_url[: -len("/bot")] + "/file/bot" if base_url.endswith("/bot") else base_url


def build_application(
    services: Services,
    *,
    request: BaseRequest | None = None,
    rate_limit: bool = True,
) -> Application[Any, BotContext, Any, Any, Any, Any]:
    """Wire every handler; `request` lets tests put a fake Telegram under the bot."""
    settings = services.settings
    builder = (
        ApplicationBuilder()
        .token(settings.TELEGRAM_BOT_TOKEN.get_secret_value())
        .base_url(settings.TELEGRAM_BASE_URL)
        .base_file_url(file_url(settings.TELEGRAM_BASE_URL))
        .application_class(metrics.MeasuredApplication)  # counts and times every update
        .context_types(ContextTypes(context=BotContext))
        .post_init(_post_init)
        .post_stop(scheduler.stop)  # give back unsent claims, for the next process at once
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    if rate_limit:
        builder = builder.rate_limiter(SharedRateLimiter(max_retries=3))
    concurrency = settings.CONCURRENT_UPDATES or default_concurrency(settings.database_url)
    if concurrency > 1:
        builder = builder.concurrent_updates(PerPersonProcessor(concurrency))
    application = builder.build()
    application.bot_data["services"] = services
    add_handlers(application)
    return application


def add_handlers(application: Application[Any, BotContext, Any, Any, Any, Any]) -> None:
    """The routing table. Order matters: the gate first, then commands, buttons, messages."""
    # -1: recognise the member or refuse the update (stops it)
    # -2: the bot's own membership of a group (a review group lost or regained), before the
    # gate: whoever removed the bot need not be staff
    application.add_handler(
        ChatMemberHandler(review_groups.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER),
        group=GATE_GROUP - 1,
    )
    application.add_handler(TypeHandler(Update, recognise), group=GATE_GROUP)
    # 0: commands
    # flows are one-to-one; groups only get review cards. Only new messages are commands and
    # answers: PTB would route an edited message here too (editing /help into /new started it)
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    edited = filters.ChatType.PRIVATE & filters.UpdateType.EDITED_MESSAGE
    application.add_handlers(
        [
            CommandHandler("start", commands.start, filters=private),
            CommandHandler("help", commands.help_command, filters=private),
            CommandHandler("new", commands.new_customer, filters=private),
            CommandHandler("invite", commands.invite, filters=private),
            CommandHandler("cancel", commands.cancel, filters=private),
            CommandHandler("lang", commands.language, filters=private),
            CommandHandler("visit", visit.start_command, filters=private),
            CommandHandler("complaint", complaint.start_command, filters=private),
            CommandHandler("find", find.find_command, filters=private),
            CommandHandler("my", find.my_command, filters=private),
            CommandHandler("today", today_plan.today_command, filters=private),
            CommandHandler("review", review.queue_command, filters=private),
            CommandHandler("pool", pool.pool_command, filters=private),
            CommandHandler("report", report.report_command, filters=private),
            CommandHandler("stats", report.stats_command, filters=private),
            CommandHandler("export", export.export_command, filters=private),
            CommandHandler("testreminder", reminders.testreminder_command, filters=private),
            CommandHandler("staff", staff.staff_command, filters=private),
            CommandHandler("handover", handover.handover_command, filters=private),
            CommandHandler("import", importing.import_command, filters=private),
            CommandHandler("pipl", pipl.pipl_command, filters=private),
            CommandHandler(
                "setgroup",
                review.setgroup_command,
                filters=filters.ChatType.GROUPS & filters.UpdateType.MESSAGE,
            ),
            # buttons: flow steps, language, features, then anything left is stale
            CallbackQueryHandler(runner.on_callback, pattern=buttons.FLOW.pattern),
            CallbackQueryHandler(commands.language_chosen, pattern=buttons.LANGUAGE.pattern),
            CallbackQueryHandler(card.on_button, pattern=buttons.CARD.pattern),
            CallbackQueryHandler(find.on_button, pattern=buttons.FIND.pattern),
            CallbackQueryHandler(visit.on_button, pattern=buttons.VISIT.pattern),
            CallbackQueryHandler(complaint.on_button, pattern=buttons.COMPLAINT.pattern),
            CallbackQueryHandler(key_persons.on_button, pattern=buttons.KEY_PERSONS.pattern),
            CallbackQueryHandler(edit.on_button, pattern=buttons.EDIT.pattern),
            CallbackQueryHandler(review.on_button, pattern=buttons.REVIEW.pattern),
            CallbackQueryHandler(reminders.on_button, pattern=buttons.REMINDERS.pattern),
            CallbackQueryHandler(reassign_flow.on_button, pattern=buttons.REASSIGN.pattern),
            CallbackQueryHandler(staff.on_button, pattern=buttons.STAFF.pattern),
            CallbackQueryHandler(handover.on_button, pattern=buttons.HANDOVER.pattern),
            CallbackQueryHandler(pool.on_button, pattern=buttons.POOL.pattern),
            CallbackQueryHandler(teams_led.on_button, pattern=buttons.TEAMS_LED.pattern),
            CallbackQueryHandler(importing.on_button, pattern=buttons.IMPORT.pattern),
            CallbackQueryHandler(pipl.on_button, pattern=buttons.PIPL.pattern),
            CallbackQueryHandler(report.on_button, pattern=buttons.REPORT.pattern),
            CallbackQueryHandler(report.on_stats_button, pattern=buttons.STATS.pattern),
            CallbackQueryHandler(export.on_button, pattern=buttons.EXPORT.pattern),
            CallbackQueryHandler(life_cycle.on_button, pattern=buttons.LIFE_CYCLE.pattern),
            CallbackQueryHandler(checkin_flow.on_button, pattern=buttons.CHECKIN.pattern),
            CallbackQueryHandler(today_plan.on_button, pattern=buttons.TODAY.pattern),
            CallbackQueryHandler(commands.stale_button),
            # `@bot name` from any chat: the member's customers as masked cards
            InlineQueryHandler(inline.on_inline_query),
            # messages: edits (never answers), unknown commands, answers, everything else
            MessageHandler(edited, commands.edited_message),
            MessageHandler(private & filters.COMMAND, commands.unknown_command),
            MessageHandler(private & filters.TEXT & ~filters.COMMAND, commands.text_message),
            MessageHandler(private & filters.Document.ALL, importing.on_document),
            MessageHandler(private & ~filters.TEXT, commands.other_message),
        ]
    )
    application.add_error_handler(on_error)  # type: ignore[arg-type]


async def _post_init(application: Application[Any, BotContext, Any, Any, Any, Any]) -> None:
    """Learn our username, make sure configured admins exist, set the command menus."""
    services: Services = application.bot_data["services"]
    services.bot_username = application.bot.username
    async with unit_of_work(services.sessions) as session:
        await staff_store.ensure_admins(session, services.settings.ADMIN_TELEGRAM_IDS)
    # the name index is built after polling starts: a search meanwhile builds or waits for it
    application.bot_data[WARM_UP_TASK] = asyncio.create_task(_warm_up_search(services))
    # strangers' menu by default; members get their own (bot.menus)
    await menus.set_stranger_menu(application.bot, services.settings.DEFAULT_LANGUAGE)
    scheduler.install(application)
    menus.install(application)


async def _warm_up_search(services: Services) -> None:
    """Build the name index in the background; a failure only costs the first search's time."""
    try:
        async with reading(services.sessions) as session:  # never holds SQLite's write lock
            await search.warm_up(session)
    except Exception:
        log.exception("building the name index at start failed; searches build it themselves")
