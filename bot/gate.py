"""Who is this? Every update passes here first; strangers get one polite refusal, logged.

The gate fails closed: if recognising the user fails (the database is locked or gone), the
update stops here with one "try again", and no other handler ever sees it.

Active members are cached between updates (`Members`), so most updates read one small value
instead of the staff row: the stamp database triggers renew at every change to staff or
team_leads, whichever process makes it (another instance, the CLI, a restore; migration 0015).
A stamp that moved empties the whole cache before anyone is looked up, so a deactivation or a
role change counts from the next update on; a stamp that cannot be read refuses the update
(fail closed) and a missing one caches nothing.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot import menus
from bot.context import LANGUAGE_KEY, BotContext
from bot.i18n import pick_language, translate
from conversations.inline import CACHE_SECONDS, card_link_target
from storage import staff as staff_store
from storage.db import unit_of_work
from storage.models import Staff

log = logging.getLogger(__name__)
MEMBERS_KEY = "gate_members"  # bot_data: this process's cache of active members


def members_of(bot_data: dict[str, object]) -> staff_store.MemberCache:
    """This process's cache of active members (storage.staff.MemberCache)."""
    members = bot_data.get(MEMBERS_KEY)
    if not isinstance(members, staff_store.MemberCache):
        members = bot_data[MEMBERS_KEY] = staff_store.MemberCache()
    return members


def is_join_attempt(update: Update) -> bool:
    """`/start <token>` in a private chat is how a newcomer joins; it must reach the handler."""
    message = update.message
    if message is None or message.text is None or message.chat.type != "private":
        return False
    parts = message.text.split()
    # a card link (conversations/inline.py) is no invite: a stranger pressing one is refused
    return (
        len(parts) == 2
        and parts[0].split("@")[0] == "/start"
        and card_link_target(parts[1]) is None
    )


def _is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == "private"


def _update_kind(update: Update) -> str:
    if update.callback_query:
        return "button"
    if update.inline_query:
        return "inline"
    if update.message and update.message.text and update.message.text.startswith("/"):
        return "command"
    if update.message:
        return "message"
    return "other"


async def recognise(update: Update, context: BotContext) -> None:
    """Attach the member to the context, or refuse the update and stop it here."""
    try:
        await _recognise(update, context)
    except ApplicationHandlerStop:
        raise
    except Exception as error:  # fail closed: no failure may let the update go on
        await _fail_closed(update, context, error)
        raise ApplicationHandlerStop from None


async def _recognise(update: Update, context: BotContext) -> None:
    """Find the member and their language; refuse strangers politely (audited)."""
    user = update.effective_user
    if user is None or user.is_bot:
        raise ApplicationHandlerStop
    services = context.services
    staff = await staff_store.recognised(
        services.sessions, user.id, cache=members_of(context.bot_data)
    )
    context.use_language(
        pick_language(
            staff.language if staff else None,
            user.language_code,
            services.settings.DEFAULT_LANGUAGE,
        )
    )
    if staff is not None and staff.active:
        await _remember(context, staff)
        menus.ensure(context.application, staff)  # their own menu (usually nothing to do)
        if staff_store.has_placeholder_name(staff):  # a configured admin's first update
            await _learn_name(context, staff, user.full_name or f"@{user.username or ''}")
        context.staff = staff
        return
    if staff is not None:  # deactivated: back to the stranger's menu
        menus.ensure(context.application, staff)
    if is_join_attempt(update):
        return
    reason = "deactivated" if staff is not None else "unregistered"
    async with unit_of_work(services.sessions) as session:
        await staff_store.record_refusal(
            session, telegram_id=user.id, reason=reason, kind=_update_kind(update)
        )
    try:
        await _answer(update, context._(f"access.{reason}"))
    except TelegramError as failure:  # the refusal is logged; no second attempt
        log.warning("could not refuse update %s: %s", update.update_id, type(failure).__name__)
    raise ApplicationHandlerStop


async def _remember(context: BotContext, staff: Staff) -> None:
    """Keep a member's language (a configured admin's first message) and, at most once an hour,
    when they were last seen (/staff shows it): most updates write nothing."""
    now = context.services.clock()
    seen_due = staff_store.seen_is_due(staff, now)
    if staff.language is not None and not seen_due:
        return
    async with unit_of_work(context.services.sessions) as session:
        if staff.language is None:
            await staff_store.set_language(
                session, staff_id=staff.id or 0, language=context.language
            )
        if seen_due:
            await staff_store.note_seen(session, staff_id=staff.id or 0, now=now)
    staff.language = staff.language or context.language
    if seen_due:
        staff.last_seen_at = now


async def _learn_name(context: BotContext, staff: Staff, name: str) -> None:
    """Cards, histories and notices name a configured admin as Telegram does, not by id."""
    if name.strip("@ "):
        async with unit_of_work(context.services.sessions) as session:
            learned = await staff_store.learn_name(session, staff_id=staff.id or 0, name=name)
        if learned:
            staff.display_name = " ".join(name.split())[:200]


async def _fail_closed(update: Update, context: BotContext, error: Exception) -> None:
    """Log the failure by kind only (its text may hold SQL parameters), answer once."""
    log.error(
        "gate failed on update %s: %s%s",
        update.update_id,
        type(error).__name__,
        f" ({type(error.__cause__).__name__})" if error.__cause__ else "",
    )
    context.staff = None
    user = update.effective_user
    remembered = context.user_data.get(LANGUAGE_KEY) if context.user_data is not None else None
    language = pick_language(
        remembered,
        user.language_code if user else None,
        context.services.settings.DEFAULT_LANGUAGE,
    )
    try:
        await _answer(update, translate(language, "error.try_again"))
    except TelegramError as failure:
        log.warning("could not answer update %s: %s", update.update_id, type(failure).__name__)


async def _answer(update: Update, text: str) -> None:
    """One answer: an alert on a button, a message in a private chat, nothing in a group, an
    empty list to an inline query (personal, so no one else is answered from it)."""
    if update.inline_query is not None:
        await update.inline_query.answer([], cache_time=CACHE_SECONDS, is_personal=True)
    elif update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    elif update.effective_message is not None and _is_private(update):
        await update.effective_message.reply_text(text)
