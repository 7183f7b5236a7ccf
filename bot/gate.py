"""Who is this? Every update passes here first; strangers get one polite refusal, logged."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from bot.i18n import pick_language
from storage import staff as staff_store
from storage.db import reading, unit_of_work

log = logging.getLogger(__name__)


def is_join_attempt(update: Update) -> bool:
    """`/start <token>` in a private chat is how a newcomer joins; it must reach the handler."""
    message = update.message
    if message is None or message.text is None or message.chat.type != "private":
        return False
    parts = message.text.split()
    return len(parts) == 2 and parts[0].split("@")[0] == "/start"


def _is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == "private"


def _update_kind(update: Update) -> str:
    if update.callback_query:
        return "button"
    if update.message and update.message.text and update.message.text.startswith("/"):
        return "command"
    if update.message:
        return "message"
    return "other"


async def recognise(update: Update, context: BotContext) -> None:
    """Attach the member to the context, or refuse the update and stop it here."""
    user = update.effective_user
    if user is None or user.is_bot:
        raise ApplicationHandlerStop
    services = context.services
    async with reading(services.sessions) as session:
        staff = await staff_store.staff_by_telegram_id(session, user.id)
    context.language = pick_language(
        staff.language if staff else None, user.language_code, services.settings.DEFAULT_LANGUAGE
    )
    if staff is not None and staff.active:
        if staff.language is None:  # e.g. a configured admin's first message: remember it
            async with unit_of_work(services.sessions) as session:
                await staff_store.set_language(
                    session, staff_id=staff.id or 0, language=context.language
                )
            staff.language = context.language
        context.staff = staff
        return
    if is_join_attempt(update):
        return
    reason = "deactivated" if staff is not None else "unregistered"
    async with unit_of_work(services.sessions) as session:
        await staff_store.record_refusal(
            session, telegram_id=user.id, reason=reason, kind=_update_kind(update)
        )
    text = context._(f"access.{reason}")
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    elif update.effective_message is not None and _is_private(update):
        await update.effective_message.reply_text(text)
    raise ApplicationHandlerStop
